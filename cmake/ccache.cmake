# Compiles through ccache when it is installed, with hits across checkouts: CI builds a fresh clone
# at a new path each time, so paths under the source tree are hashed relative to it
# (CCACHE_BASEDIR) and the working directory is left out of the hash (CCACHE_NOHASHDIR), which is
# sound because the debug information names files relative to the tree too (-fdebug-prefix-map).
# Included by the main build and by the fuzz build (fuzz/CMakeLists.txt), each passing its root.
function(runnel_use_ccache source_root)
  find_program(CCACHE_PROGRAM ccache)
  if(NOT CCACHE_PROGRAM)
    return()
  endif()
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${source_root} CCACHE_NOHASHDIR=true
      ${CCACHE_PROGRAM} PARENT_SCOPE)
  add_compile_options(-fdebug-prefix-map=${source_root}/=)
endfunction()
