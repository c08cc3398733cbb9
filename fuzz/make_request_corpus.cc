// Writes the request fuzzer's seed corpus (tests/protocol_test_support.h: one request of every
// supported api at every supported version, and librdkafka's ApiVersions v3) into a directory,
// one file each, replacing files of the same name:
//
//   build/tests/make_request_corpus fuzz/corpus/request_decode
//
// tests/protocol_codec_test.cc fails when the committed corpus differs from what this writes.
#include <cstdio>
#include <fstream>
#include <string>

#include "tests/protocol_test_support.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  const std::string directory = argv[1];
  int written = 0;
  for (const runnel::protocol::testing::CorpusFile& file :
       runnel::protocol::testing::RequestCorpus()) {
    std::ofstream out(directory + "/" + file.name, std::ios::binary | std::ios::trunc);
    out.write(file.bytes.data(), static_cast<std::streamsize>(file.bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s/%s\n", directory.c_str(), file.name.c_str());
      return 1;
    }
    ++written;
  }
  std::printf("wrote %d files to %s\n", written, directory.c_str());
  return 0;
}
