#include "broker/storage/compression.h"

#include <lz4frame.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "broker/common/big_endian.h"

namespace runnel::storage {
namespace {

// zlib's windowBits: a 32 KiB window (15), plus 16 to ask for the gzip wrapper rather than zlib's.
constexpr int kGzipWindowBits = 15 + 16;
constexpr int kGzipMemoryLevel = 8;  // zlib's default.
// A snappy copy element emits at most 64 bytes from 3 bytes of input, and literals emit no more
// than they take, so a valid block never expands more than 64/3 times. A declared length beyond
// that is a lie, refused before it can size an allocation.
constexpr size_t kSnappyExpansionMax = 22;
// The first output buffer of a streaming decoder: a guess at the output size from the input size,
// clamped, then doubled as needed up to the limit.
constexpr size_t kDecodeExpansionGuess = 4;
constexpr size_t kDecodeOutputBytesInitialMin = size_t{4} << 10;

absl::Status Malformed(absl::string_view codec, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(codec, " decompression: ", what));
}

absl::Status TooLarge(absl::string_view codec, size_t output_bytes_max) {
  return absl::InvalidArgumentError(absl::StrCat(
      codec, " decompression: output exceeds the limit of ", output_bytes_max, " bytes"));
}

// The output of a streaming decoder. It grows geometrically up to one byte past the caller's limit:
// a decoder that manages to write that extra byte has proven the output too large, without the
// buffer ever holding more.
class BoundedOutput {
 public:
  BoundedOutput(size_t output_bytes_max, size_t input_bytes)
      : output_bytes_max_(output_bytes_max), capacity_max_(output_bytes_max + 1) {
    const size_t guess =
        std::max(kDecodeOutputBytesInitialMin,
                 std::min(input_bytes, kCompressionBytesMax) * kDecodeExpansionGuess);
    buffer_.resize(std::min(guess, capacity_max_));
  }

  // Free space at the end of the buffer for the decoder to write into.
  struct Room {
    char* data;
    size_t bytes;
  };
  // Grows the buffer first if it is full. The room is empty only when the buffer already holds
  // capacity_max_ bytes, which exceeded() has then reported.
  Room MakeRoom() {
    Grow();
    return Room{buffer_.data() + produced_bytes_, buffer_.size() - produced_bytes_};
  }

  // The decoder wrote `bytes` into the last MakeRoom().
  void Commit(size_t bytes) {
    assert(bytes <= buffer_.size() - produced_bytes_);
    produced_bytes_ += bytes;
  }

  bool exceeded() const { return produced_bytes_ > output_bytes_max_; }

  std::string Finish() && {
    assert(!exceeded());
    buffer_.resize(produced_bytes_);
    return std::move(buffer_);
  }

 private:
  void Grow() {
    if (produced_bytes_ < buffer_.size()) return;
    buffer_.resize(
        std::min(std::max(buffer_.size() * 2, kDecodeOutputBytesInitialMin), capacity_max_));
  }

  const size_t output_bytes_max_;
  const size_t capacity_max_;
  std::string buffer_;
  size_t produced_bytes_ = 0;
};

// --- gzip ---

absl::StatusOr<std::string> GzipCompress(absl::string_view data) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, kGzipMemoryLevel,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::ResourceExhaustedError("gzip compression: deflateInit2 failed");
  }
  // deflateBound() is large enough for deflate(Z_FINISH) to finish in one call.
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  const size_t written_bytes = out.size() - stream.avail_out;
  deflateEnd(&stream);
  if (result != Z_STREAM_END) {
    return absl::InternalError(absl::StrCat("gzip compression: deflate returned ", result));
  }
  out.resize(written_bytes);
  return out;
}

// Owns an inflate stream, so that every return path ends it.
class Inflater {
 public:
  Inflater() { initialized_ = inflateInit2(&stream_, kGzipWindowBits) == Z_OK; }
  ~Inflater() {
    if (initialized_) inflateEnd(&stream_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  bool initialized() const { return initialized_; }
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_{};
  bool initialized_ = false;
};

absl::StatusOr<std::string> GzipDecompress(absl::string_view data, size_t output_bytes_max) {
  constexpr absl::string_view kCodec = "gzip";
  if (data.empty()) return Malformed(kCodec, "empty input");
  Inflater inflater;
  if (!inflater.initialized()) return absl::ResourceExhaustedError("gzip: inflateInit2 failed");
  z_stream& stream = inflater.stream();
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  BoundedOutput output(output_bytes_max, data.size());
  while (true) {
    const BoundedOutput::Room room = output.MakeRoom();
    const size_t room_bytes = room.bytes;
    if (room_bytes == 0) return TooLarge(kCodec, output_bytes_max);
    stream.next_out = reinterpret_cast<Bytef*>(room.data);
    // Room is bounded by kCompressionBytesMax + 1, which fits zlib's 32-bit counts.
    stream.avail_out = static_cast<uInt>(room_bytes);
    const uInt input_bytes_before = stream.avail_in;
    const int result = inflate(&stream, Z_NO_FLUSH);
    const size_t produced_bytes = room_bytes - stream.avail_out;
    output.Commit(produced_bytes);
    if (output.exceeded()) return TooLarge(kCodec, output_bytes_max);
    if (result == Z_STREAM_END) {
      if (stream.avail_in == 0) break;
      // Another gzip member follows, which Java's GZIPInputStream also reads.
      if (inflateReset(&stream) != Z_OK) return Malformed(kCodec, "inflateReset failed");
      continue;
    }
    if (result == Z_OK && (produced_bytes > 0 || stream.avail_in != input_bytes_before)) continue;
    if (result == Z_OK || result == Z_BUF_ERROR) {
      // No progress with room to write: the input ended before the stream did.
      return Malformed(kCodec, "truncated stream");
    }
    return Malformed(
        kCodec, stream.msg != nullptr ? stream.msg : absl::StrCat("inflate returned ", result));
  }
  return std::move(output).Finish();
}

// --- snappy ---

absl::StatusOr<std::string> SnappyCompress(absl::string_view data) {
  std::string out;
  out.reserve(kSnappyXerialHeaderBytes + snappy::MaxCompressedLength(data.size()) +
              (data.size() / kSnappyXerialBlockBytes + 1) * kSnappyXerialBlockLengthBytes);
  out.append(kSnappyXerialMagic.data(), kSnappyXerialMagic.size());
  AppendBigEndian<int32_t>(out, kSnappyXerialVersion);
  AppendBigEndian<int32_t>(out, kSnappyXerialCompatibleVersion);
  for (size_t position = 0; position < data.size(); position += kSnappyXerialBlockBytes) {
    const absl::string_view block = data.substr(position, kSnappyXerialBlockBytes);
    const size_t length_position = out.size();
    AppendBigEndian<int32_t>(out, 0);  // The compressed length, filled in below.
    const size_t block_position = out.size();
    out.resize(block_position + snappy::MaxCompressedLength(block.size()));
    size_t compressed_bytes = 0;
    snappy::RawCompress(block.data(), block.size(), out.data() + block_position, &compressed_bytes);
    out.resize(block_position + compressed_bytes);
    std::string length;
    AppendBigEndian<int32_t>(length, static_cast<int32_t>(compressed_bytes));
    out.replace(length_position, length.size(), length);
  }
  return out;
}

// Decompresses one raw snappy block and appends it to `*out`, which may hold at most
// `output_bytes_max` bytes in all.
absl::Status AppendSnappyBlock(absl::string_view block, size_t output_bytes_max, std::string* out) {
  constexpr absl::string_view kCodec = "snappy";
  size_t block_output_bytes = 0;
  if (!snappy::GetUncompressedLength(block.data(), block.size(), &block_output_bytes)) {
    return Malformed(kCodec, "unreadable block length");
  }
  if (block_output_bytes > block.size() * kSnappyExpansionMax) {
    return Malformed(kCodec, absl::StrCat("block of ", block.size(), " bytes claims to expand to ",
                                          block_output_bytes));
  }
  if (block_output_bytes > output_bytes_max - out->size()) {
    return TooLarge(kCodec, output_bytes_max);
  }
  const size_t block_position = out->size();
  out->resize(block_position + block_output_bytes);
  if (!snappy::RawUncompress(block.data(), block.size(), out->data() + block_position)) {
    return Malformed(kCodec, "corrupt block");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SnappyDecompress(absl::string_view data, size_t output_bytes_max) {
  constexpr absl::string_view kCodec = "snappy";
  std::string out;
  if (!absl::StartsWith(data, kSnappyXerialMagic)) {
    // A raw snappy block, as some clients send and librdkafka accepts.
    if (absl::Status status = AppendSnappyBlock(data, output_bytes_max, &out); !status.ok()) {
      return status;
    }
    return out;
  }
  if (data.size() < kSnappyXerialHeaderBytes) return Malformed(kCodec, "truncated xerial header");
  // The version fields are not checked: every writer sets 1, and librdkafka ignores them too.
  absl::string_view rest = data.substr(kSnappyXerialHeaderBytes);
  while (!rest.empty()) {
    if (rest.size() < kSnappyXerialBlockLengthBytes) {
      return Malformed(kCodec, "truncated block length");
    }
    const uint32_t block_bytes = LoadBigEndian<uint32_t>(rest.data());
    rest.remove_prefix(kSnappyXerialBlockLengthBytes);
    if (block_bytes > rest.size()) {
      return Malformed(kCodec, absl::StrCat("block of ", block_bytes, " bytes but only ",
                                            rest.size(), " remain"));
    }
    if (absl::Status status =
            AppendSnappyBlock(rest.substr(0, block_bytes), output_bytes_max, &out);
        !status.ok()) {
      return status;
    }
    rest.remove_prefix(block_bytes);
  }
  return out;
}

// --- lz4 ---

absl::StatusOr<std::string> Lz4Compress(absl::string_view data) {
  LZ4F_preferences_t preferences{};
  // Kafka's Java reader decodes every block on its own, so blocks must not refer to earlier ones.
  preferences.frameInfo.blockMode = LZ4F_blockIndependent;
  preferences.frameInfo.blockSizeID = LZ4F_max64KB;
  // Any non-zero value asks LZ4F to record the true content size, which lets readers size their
  // output once. Empty input leaves it 0 (unknown), as the format requires.
  preferences.frameInfo.contentSize = data.size();
  std::string out(LZ4F_compressFrameBound(data.size(), &preferences), '\0');
  const size_t result =
      LZ4F_compressFrame(out.data(), out.size(), data.data(), data.size(), &preferences);
  if (LZ4F_isError(result)) {
    return absl::InternalError(absl::StrCat("lz4 compression: ", LZ4F_getErrorName(result)));
  }
  out.resize(result);
  return out;
}

// A reusable LZ4F decompression context. Creating one, and the block buffers LZ4F allocates on
// its first frame, costs more than decompressing a small batch, so each thread keeps one
// (Lz4Context()) and resets it before every use: nothing of one call reaches the next.
class Lz4Decompressor {
 public:
  Lz4Decompressor() {
    if (LZ4F_isError(LZ4F_createDecompressionContext(&context_, LZ4F_VERSION))) context_ = nullptr;
  }
  ~Lz4Decompressor() {
    if (context_ != nullptr) LZ4F_freeDecompressionContext(context_);
  }
  Lz4Decompressor(const Lz4Decompressor&) = delete;
  Lz4Decompressor& operator=(const Lz4Decompressor&) = delete;

  // The context, fresh (as if just created), or nullptr when it could not be created.
  LZ4F_dctx* Fresh() {
    if (context_ != nullptr) LZ4F_resetDecompressionContext(context_);
    return context_;
  }

 private:
  LZ4F_dctx* context_ = nullptr;
};

// Per thread, not shared: the broker and clients are single-threaded per Env, and a thread of
// a real-I/O program never decompresses for two callers at once (Decompress runs to completion).
LZ4F_dctx* Lz4Context() {
  thread_local Lz4Decompressor decompressor;
  return decompressor.Fresh();
}

absl::StatusOr<std::string> Lz4Decompress(absl::string_view data, size_t output_bytes_max) {
  constexpr absl::string_view kCodec = "lz4";
  if (data.empty()) return Malformed(kCodec, "empty input");
  LZ4F_dctx* const context = Lz4Context();
  if (context == nullptr) return absl::ResourceExhaustedError("lz4: no context");
  BoundedOutput output(output_bytes_max, data.size());
  absl::string_view rest = data;
  // LZ4F_decompress's hint: 0 once a frame has ended, else how much more input it wants.
  size_t input_bytes_wanted = 1;
  while (true) {
    const BoundedOutput::Room room = output.MakeRoom();
    const size_t room_bytes = room.bytes;
    if (room_bytes == 0) return TooLarge(kCodec, output_bytes_max);
    size_t produced_bytes = room_bytes;
    size_t consumed_bytes = rest.size();
    const size_t result = LZ4F_decompress(context, room.data, &produced_bytes, rest.data(),
                                          &consumed_bytes, nullptr);
    if (LZ4F_isError(result)) return Malformed(kCodec, LZ4F_getErrorName(result));
    output.Commit(produced_bytes);
    rest.remove_prefix(consumed_bytes);
    if (output.exceeded()) return TooLarge(kCodec, output_bytes_max);
    const bool progressed = produced_bytes > 0 || consumed_bytes > 0;
    // A call that does nothing after a frame has ended reports what the next frame would need;
    // that must not hide the fact that the last frame ended.
    if (progressed || result == 0) input_bytes_wanted = result;
    // Done when the input is used up and the decoder stopped short of filling its room (a full room
    // may mean it has more to write).
    if (rest.empty() && produced_bytes < room_bytes) break;
    if (!progressed) return Malformed(kCodec, "decoder made no progress");
    // After a frame ends, LZ4F starts reading the next one: concatenated frames decode in order.
  }
  if (input_bytes_wanted != 0) return Malformed(kCodec, "truncated frame");
  return std::move(output).Finish();
}

// --- zstd ---

// A reusable zstd compression context, per thread (ZSTD_compress would create and free one of
// several hundred KiB for every batch). ZSTD_compressCCtx starts every call afresh.
ZSTD_CCtx* ZstdCompressionContext() {
  struct Owner {
    ZSTD_CCtx* context = ZSTD_createCCtx();
    ~Owner() { ZSTD_freeCCtx(context); }
  };
  thread_local Owner owner;
  return owner.context;
}

absl::StatusOr<std::string> ZstdCompress(absl::string_view data) {
  ZSTD_CCtx* const context = ZstdCompressionContext();
  if (context == nullptr) return absl::ResourceExhaustedError("zstd compression: no context");
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t result = ZSTD_compressCCtx(context, out.data(), out.size(), data.data(),
                                          data.size(), ZSTD_CLEVEL_DEFAULT);
  if (ZSTD_isError(result)) {
    return absl::InternalError(absl::StrCat("zstd compression: ", ZSTD_getErrorName(result)));
  }
  out.resize(result);
  return out;
}

// A reusable zstd decompression context, kept per thread for the same reason as Lz4Context's
// (a zstd context is over 100 KiB) and reset before every use; its one parameter, the window
// limit, is set once and survives a session reset.
class ZstdDecompressor {
 public:
  ZstdDecompressor() : context_(ZSTD_createDCtx()) {
    if (context_ != nullptr &&
        ZSTD_isError(ZSTD_DCtx_setParameter(context_, ZSTD_d_windowLogMax, kZstdWindowLogMax))) {
      ZSTD_freeDCtx(context_);
      context_ = nullptr;
    }
  }
  ~ZstdDecompressor() { ZSTD_freeDCtx(context_); }  // Accepts nullptr.
  ZstdDecompressor(const ZstdDecompressor&) = delete;
  ZstdDecompressor& operator=(const ZstdDecompressor&) = delete;

  // The context with no frame in progress, or nullptr when it could not be created.
  ZSTD_DCtx* Fresh() {
    if (context_ != nullptr) ZSTD_DCtx_reset(context_, ZSTD_reset_session_only);
    return context_;
  }

 private:
  ZSTD_DCtx* context_;
};

ZSTD_DCtx* ZstdContext() {
  thread_local ZstdDecompressor decompressor;
  return decompressor.Fresh();
}

absl::StatusOr<std::string> ZstdDecompress(absl::string_view data, size_t output_bytes_max) {
  constexpr absl::string_view kCodec = "zstd";
  if (data.empty()) return Malformed(kCodec, "empty input");
  ZSTD_DCtx* const context = ZstdContext();
  if (context == nullptr) return absl::ResourceExhaustedError("zstd: no context");
  BoundedOutput output(output_bytes_max, data.size());
  ZSTD_inBuffer input{data.data(), data.size(), 0};
  // ZSTD_decompressStream's result: 0 once a frame has ended and been flushed.
  size_t frame_bytes_pending = 1;
  while (true) {
    const BoundedOutput::Room room = output.MakeRoom();
    const size_t room_bytes = room.bytes;
    if (room_bytes == 0) return TooLarge(kCodec, output_bytes_max);
    ZSTD_outBuffer out_buffer{room.data, room_bytes, 0};
    const size_t input_position_before = input.pos;
    const size_t result = ZSTD_decompressStream(context, &out_buffer, &input);
    if (ZSTD_isError(result)) return Malformed(kCodec, ZSTD_getErrorName(result));
    output.Commit(out_buffer.pos);
    if (output.exceeded()) return TooLarge(kCodec, output_bytes_max);
    const bool progressed = out_buffer.pos > 0 || input.pos != input_position_before;
    // A call that does nothing after a frame has ended reports what the next frame would need;
    // that must not hide the fact that the last frame ended.
    if (progressed || result == 0) frame_bytes_pending = result;
    // Done when the input is used up and the decoder stopped short of filling its room.
    if (input.pos == input.size && out_buffer.pos < room_bytes) break;
    if (!progressed) return Malformed(kCodec, "decoder made no progress");
  }
  if (frame_bytes_pending != 0) return Malformed(kCodec, "truncated frame");
  return std::move(output).Finish();
}

}  // namespace

absl::StatusOr<std::string> Compress(Compression codec, absl::string_view data) {
  if (data.size() > kCompressionBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("compression: input of ", data.size(),
                                                   " bytes exceeds ", kCompressionBytesMax));
  }
  switch (codec) {
    case Compression::kNone:
      return std::string(data);
    case Compression::kGzip:
      return GzipCompress(data);
    case Compression::kSnappy:
      return SnappyCompress(data);
    case Compression::kLz4:
      return Lz4Compress(data);
    case Compression::kZstd:
      return ZstdCompress(data);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("compression: unknown codec ", static_cast<int>(codec)));
}

absl::StatusOr<std::string> Decompress(Compression codec, absl::string_view data,
                                       size_t output_bytes_max) {
  output_bytes_max = std::min(output_bytes_max, kCompressionBytesMax);
  // Inputs this large cannot be a batch's records, and would overflow zlib's 32-bit counts.
  if (data.size() > kCompressionBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("decompression: input of ", data.size(),
                                                   " bytes exceeds ", kCompressionBytesMax));
  }
  switch (codec) {
    case Compression::kNone:
      if (data.size() > output_bytes_max) return TooLarge("none", output_bytes_max);
      return std::string(data);
    case Compression::kGzip:
      return GzipDecompress(data, output_bytes_max);
    case Compression::kSnappy:
      return SnappyDecompress(data, output_bytes_max);
    case Compression::kLz4:
      return Lz4Decompress(data, output_bytes_max);
    case Compression::kZstd:
      return ZstdDecompress(data, output_bytes_max);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("decompression: unknown codec ", static_cast<int>(codec)));
}

absl::string_view CompressionName(Compression codec) {
  switch (codec) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kSnappy:
      return "snappy";
    case Compression::kLz4:
      return "lz4";
    case Compression::kZstd:
      return "zstd";
  }
  return "unknown";
}

}  // namespace runnel::storage
