// Tests of sim/trace.h: the running digest (the determinism witness), the trace file format
// (sim/trace.proto, written by Trace::OpenFile and read back by ReadTraceFile), in-memory keeping
// with its limit, and DescribeTraceEvent. Digests are compared between Trace objects fed chosen
// events; files are written under the test's temporary directory and, for the error cases,
// truncated or overwritten with garbage before reading.
#include "sim/trace.h"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace runnel::sim {
namespace {

TraceEntry SampleEntry() {
  TraceEntry entry;
  entry.time_us = 123'456;
  entry.node = 2;
  entry.kind = DELIVER;
  entry.peer_node = 1;
  entry.connection = 77;
  entry.bytes = 512;
  entry.value = -9;
  entry.subject = "subject";
  entry.detail = "detail";
  entry.label = "label";
  return entry;
}

uint64_t DigestOf(const std::vector<TraceEntry>& entries) {
  Trace trace;
  for (const TraceEntry& entry : entries) trace.Record(entry);
  return trace.digest();
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/trace_test_", name);
}

// The same events give the same digest in separate Trace objects; an empty trace has a fixed
// digest that any event changes; event_count counts events; DigestHex is the digest as 16
// lower-case hex digits.
TEST(TraceDigestTest, SameEventsSameDigest) {
  Trace empty;
  EXPECT_EQ(empty.event_count(), 0u);
  EXPECT_EQ(Trace().digest(), empty.digest());
  const std::vector<TraceEntry> events = {SampleEntry(), SampleEntry(), TraceEntry()};
  EXPECT_EQ(DigestOf(events), DigestOf(events));
  EXPECT_NE(DigestOf(events), empty.digest());
  EXPECT_NE(DigestOf({TraceEntry()}), empty.digest());

  Trace trace;
  for (const TraceEntry& entry : events) trace.Record(entry);
  EXPECT_EQ(trace.event_count(), 3u);
  const std::string hex = trace.DigestHex();
  ASSERT_EQ(hex.size(), 16u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(std::stoull(hex, nullptr, 16), trace.digest());
}

// Changing any single field of an event (each numeric field by one, each string by one character
// or by moving a character into a neighbouring field) changes the digest, and so does the order of
// events; all the variants' digests are pairwise distinct.
TEST(TraceDigestTest, DigestChangesWithAnyField) {
  const TraceEntry base = SampleEntry();
  std::vector<std::function<void(TraceEntry&)>> changes = {
      [](TraceEntry& e) { e.time_us += 1; },
      [](TraceEntry& e) { e.node += 1; },
      [](TraceEntry& e) { e.node = -1; },
      [](TraceEntry& e) { e.kind = SEND; },
      [](TraceEntry& e) { e.peer_node += 1; },
      [](TraceEntry& e) { e.connection += 1; },
      [](TraceEntry& e) { e.bytes += 1; },
      [](TraceEntry& e) { e.value += 1; },
      [](TraceEntry& e) { e.subject = "subjecT"; },
      [](TraceEntry& e) { e.detail = "detaiL"; },
      [](TraceEntry& e) { e.label = "labeL"; },
      [](TraceEntry& e) { e.subject = "subjectd"; e.detail = "etail"; },  // moved between fields
      [](TraceEntry& e) { e.subject = "a-much-longer-subject-over-eight-bytes"; },
  };
  std::set<uint64_t> digests = {DigestOf({base})};
  for (size_t i = 0; i < changes.size(); ++i) {
    TraceEntry changed = base;
    changes[i](changed);
    EXPECT_TRUE(digests.insert(DigestOf({changed})).second) << "change " << i;
  }
  // A trailing NUL is a real byte of the label.
  TraceEntry with_nul = base;
  const std::string label_with_nul("label\0", 6);
  with_nul.label = label_with_nul;
  EXPECT_NE(DigestOf({with_nul}), DigestOf({base}));

  TraceEntry other = base;
  other.time_us += 10;
  EXPECT_NE(DigestOf({base, other}), DigestOf({other, base}));
}

// A trace file written with OpenFile holds the header and then every event recorded while it was
// open (not those before), field for field; CloseFile succeeds; ReadTraceFile returns them.
// Reading into a reused TraceFileContents replaces, not appends.
TEST(TraceFileTest, RoundTripsHeaderAndEvents) {
  const std::string path = TempPath("round_trip.bin");
  Trace trace;
  trace.Record(SampleEntry());  // before the file: not written
  TraceHeader header;
  header.set_seed(42);
  header.add_node_names("node-0");
  header.add_node_names("node-1");
  header.set_source("trace_test");
  ASSERT_TRUE(trace.OpenFile(path, header).ok());
  for (int i = 0; i < 100; ++i) {
    TraceEntry entry = SampleEntry();
    entry.time_us = i * 10;
    entry.kind = i % 2 == 0 ? SEND : SEMANTIC;
    entry.value = -i;
    entry.bytes = static_cast<uint64_t>(i) << 40;
    const std::string subject = absl::StrCat("subject-", i, std::string(1, '\0'), "x");
    entry.subject = subject;
    trace.Record(entry);
  }
  ASSERT_TRUE(trace.CloseFile().ok());
  ASSERT_TRUE(trace.CloseFile().ok());  // closing twice is harmless

  TraceFileContents contents;
  ASSERT_TRUE(ReadTraceFile(path, &contents).ok());
  EXPECT_EQ(contents.header.seed(), 42u);
  ASSERT_EQ(contents.header.node_names_size(), 2);
  EXPECT_EQ(contents.header.node_names(1), "node-1");
  EXPECT_EQ(contents.header.source(), "trace_test");
  ASSERT_EQ(contents.events.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    const TraceEvent& event = contents.events[static_cast<size_t>(i)];
    EXPECT_EQ(event.time_us(), i * 10);
    EXPECT_EQ(event.node(), 2);
    EXPECT_EQ(event.kind(), i % 2 == 0 ? SEND : SEMANTIC);
    EXPECT_EQ(event.peer_node(), 1);
    EXPECT_EQ(event.connection(), 77u);
    EXPECT_EQ(event.bytes(), static_cast<uint64_t>(i) << 40);
    EXPECT_EQ(event.value(), -i);
    EXPECT_EQ(event.subject(), absl::StrCat("subject-", i, std::string(1, '\0'), "x"));
    EXPECT_EQ(event.detail(), "detail");
    EXPECT_EQ(event.label(), "label");
  }
  // Reading again into the same contents gives the same result, not twice the events.
  ASSERT_TRUE(ReadTraceFile(path, &contents).ok());
  EXPECT_EQ(contents.events.size(), 100u);
  std::remove(path.c_str());
}

// A trace file with a header and no events reads back as the header and an empty event list.
TEST(TraceFileTest, HeaderOnlyFileIsValid) {
  const std::string path = TempPath("header_only.bin");
  {
    Trace trace;
    TraceHeader header;
    header.set_seed(7);
    ASSERT_TRUE(trace.OpenFile(path, header).ok());
  }  // the destructor closes the file
  TraceFileContents contents;
  ASSERT_TRUE(ReadTraceFile(path, &contents).ok());
  EXPECT_EQ(contents.header.seed(), 7u);
  EXPECT_TRUE(contents.events.empty());
  std::remove(path.c_str());
}

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Damaged files give an error status, never a crash or a silent success: a missing file
// (kNotFound), a directory, an empty file, a file cut at every possible length inside its last record, garbage
// bytes, a huge length prefix, and a file whose first record is an event instead of a header (all
// kDataLoss). Opening a file for writing in a missing directory fails with an error.
TEST(TraceFileTest, DamagedFilesGiveErrors) {
  const std::string path = TempPath("damaged.bin");
  TraceFileContents contents;
  EXPECT_EQ(ReadTraceFile(TempPath("does_not_exist.bin"), &contents).code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(ReadTraceFile(::testing::TempDir(), &contents).ok());  // a directory

  {
    Trace trace;
    TraceHeader header;
    header.set_seed(1);
    ASSERT_TRUE(trace.OpenFile(path, header).ok());
    for (int i = 0; i < 3; ++i) trace.Record(SampleEntry());
  }
  const std::string good = ReadAll(path);
  ASSERT_TRUE(ReadTraceFile(path, &contents).ok());

  WriteAll(path, "");
  EXPECT_EQ(ReadTraceFile(path, &contents).code(), absl::StatusCode::kDataLoss);

  // Cut anywhere inside the file except at record boundaries: always an error. (Cutting exactly at
  // a boundary leaves a valid, shorter trace.)
  size_t boundaries_ok = 0;
  for (size_t length = 1; length < good.size(); ++length) {
    WriteAll(path, good.substr(0, length));
    const absl::Status status = ReadTraceFile(path, &contents);
    if (status.ok()) {
      ++boundaries_ok;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << "length " << length;
    }
  }
  EXPECT_EQ(boundaries_ok, 3u);  // after the header, after event 1, after event 2

  for (const std::string& garbage :
       {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10),
        std::string("\x05hello"), std::string("\xff\xff\xff\x0f"), std::string(1000, '\x01'),
        std::string("\x10") + std::string(16, '\xff')}) {
    WriteAll(path, garbage);
    const absl::Status status = ReadTraceFile(path, &contents);
    EXPECT_FALSE(status.ok()) << "garbage of " << garbage.size() << " bytes";
  }

  // An event record where the header belongs.
  {
    TraceRecord record;
    *record.mutable_event() = TraceEvent();
    record.mutable_event()->set_time_us(5);
    std::string bytes;
    ASSERT_TRUE(record.SerializeToString(&bytes));
    WriteAll(path, std::string(1, static_cast<char>(bytes.size())) + bytes);
    EXPECT_EQ(ReadTraceFile(path, &contents).code(), absl::StatusCode::kDataLoss);
  }

  Trace trace;
  EXPECT_FALSE(trace.OpenFile(TempPath("no/such/directory/trace.bin"), TraceHeader()).ok());
  trace.Record(SampleEntry());  // still usable without a file
  EXPECT_TRUE(trace.CloseFile().ok());
  std::remove(path.c_str());
}

// KeepInMemory keeps events recorded after it is called, up to its limit, and counts the rest as
// dropped; the digest and event_count cover every event whether kept or not, and keeping does not
// change the digest.
TEST(TraceMemoryTest, KeepInMemoryLimitAndDroppedCount) {
  Trace keeping;
  Trace plain;
  TraceEntry entry = SampleEntry();
  keeping.Record(entry);
  plain.Record(entry);
  keeping.KeepInMemory(5);
  for (int i = 0; i < 12; ++i) {
    entry.time_us = i;
    keeping.Record(entry);
    plain.Record(entry);
  }
  ASSERT_EQ(keeping.kept_events().size(), 5u);
  EXPECT_EQ(keeping.dropped_event_count(), 7u);
  EXPECT_EQ(keeping.event_count(), 13u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(keeping.kept_events()[static_cast<size_t>(i)].time_us(), i);
  EXPECT_EQ(keeping.digest(), plain.digest());
  EXPECT_TRUE(plain.kept_events().empty());
  EXPECT_EQ(plain.dropped_event_count(), 0u);

  Trace none;
  none.KeepInMemory(0);
  none.Record(entry);
  EXPECT_TRUE(none.kept_events().empty());
  EXPECT_EQ(none.dropped_event_count(), 1u);
}

// DescribeTraceEvent gives one line naming the kind (by its enum name) and the node, plus the
// fields that are set (peer, connection, bytes, value, label, subject, detail) and not those that
// are not.
TEST(TraceDescribeTest, MentionsKindNodeAndSetFields) {
  TraceEvent event;
  event.set_time_us(1'500'000);
  event.set_node(3);
  event.set_kind(CONNECTION_RESET);
  event.set_peer_node(4);
  event.set_connection(99);
  event.set_detail("connection timed out");
  const std::string line = DescribeTraceEvent(event);
  EXPECT_NE(line.find("CONNECTION_RESET"), std::string::npos) << line;
  EXPECT_NE(line.find("node  3"), std::string::npos) << line;
  EXPECT_NE(line.find("1.500000s"), std::string::npos) << line;
  EXPECT_NE(line.find("peer=4"), std::string::npos) << line;
  EXPECT_NE(line.find("conn=99"), std::string::npos) << line;
  EXPECT_NE(line.find("connection timed out"), std::string::npos) << line;
  EXPECT_EQ(line.find("bytes="), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;

  TraceEvent semantic;
  semantic.set_node(-1);
  semantic.set_kind(SEMANTIC);
  semantic.set_peer_node(-1);
  semantic.set_label("leader");
  semantic.set_subject("orders-0");
  semantic.set_value(5);
  semantic.set_bytes(10);
  const std::string text = DescribeTraceEvent(semantic);
  EXPECT_NE(text.find("SEMANTIC"), std::string::npos) << text;
  EXPECT_NE(text.find("node -1"), std::string::npos) << text;
  EXPECT_NE(text.find("[leader]"), std::string::npos) << text;
  EXPECT_NE(text.find("orders-0"), std::string::npos) << text;
  EXPECT_NE(text.find("value=5"), std::string::npos) << text;
  EXPECT_NE(text.find("bytes=10"), std::string::npos) << text;
  EXPECT_EQ(text.find("peer="), std::string::npos) << text;
}

}  // namespace
}  // namespace runnel::sim
