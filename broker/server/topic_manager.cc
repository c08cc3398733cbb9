#include "broker/server/topic_manager.h"

#include <cassert>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "broker/server/disk_helpers.h"

namespace runnel::server {
namespace {

// A status with the same code and `context` in front of the message.
absl::Status WithContext(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// The prefix of every file the node keeps for itself in its data directory. Kafka's topic names
// may start with "__" too (__consumer_offsets), but a partition directory always ends in
// "-<partition>", which these names never do.
constexpr absl::string_view kNodeFilePrefix = "__runnel_";

// The most digits of a partition number in a directory name (int32).
constexpr size_t kPartitionDigitsMax = 10;

struct PartitionDirectoryName {
  std::string topic;
  int32_t partition = 0;
};

// Parses "<topic>-<partition>" (the partition in plain decimal, below kPartitionsPerTopicMax); any
// other name is not a partition directory.
std::optional<PartitionDirectoryName> ParsePartitionDirectoryName(absl::string_view name) {
  const size_t dash = name.rfind('-');
  if (dash == absl::string_view::npos) return std::nullopt;
  const absl::string_view topic = name.substr(0, dash);
  const absl::string_view digits = name.substr(dash + 1);
  // Partition directories are named without leading zeros; anything else is not one of ours.
  if (digits.empty() || digits.size() > kPartitionDigitsMax) return std::nullopt;
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int32_t partition = 0;
  if (!absl::SimpleAtoi(digits, &partition) || partition >= kPartitionsPerTopicMax) {
    return std::nullopt;
  }
  if (!ValidateTopicName(topic).ok()) return std::nullopt;
  return PartitionDirectoryName{std::string(topic), partition};
}

}  // namespace

// One metadata file write in progress (see the file comment of topic_manager.h for the steps).
struct TopicManager::MetadataWrite {
  enum class Step { kAncestors, kDataDirectoryBefore, kWriteTemp, kRename, kDone };

  uint64_t version = 0;
  MetadataImage image;
  std::string bytes;
  Step step = Step::kAncestors;
};

template <typename F>
auto TopicManager::Guarded(F callback) {
  return [alive = std::weak_ptr<TopicManager*>(alive_),
          callback = std::move(callback)](auto&&... args) mutable {
    if (alive.expired()) return;
    callback(std::forward<decltype(args)>(args)...);
  };
}

// ---------------------------------------------------------------------------------------------
// Open and Close.

TopicManager::TopicManager(Env& env, std::string data_dir, BrokerDefaults defaults)
    : env_(env),
      disk_(env.disk()),
      data_dir_(std::move(data_dir)),
      defaults_(std::move(defaults)),
      alive_(std::make_shared<TopicManager*>(this)) {}

TopicManager::~TopicManager() {
  alive_.reset();
  if (maintenance_timer_ != kNoTimer) env_.clock().CancelTimer(maintenance_timer_);
}

absl::StatusOr<std::unique_ptr<TopicManager>> TopicManager::Open(Env& env, std::string data_dir,
                                                                 BrokerDefaults defaults) {
  if (absl::Status valid = ValidateDiskPath(data_dir); !valid.ok()) return valid;
  if (absl::Status valid = ValidateBrokerDefaults(defaults); !valid.ok()) return valid;
  std::unique_ptr<TopicManager> manager(
      new TopicManager(env, std::move(data_dir), std::move(defaults)));
  if (absl::Status loaded = manager->Load(); !loaded.ok()) {
    env.Log(LogLevel::kError, absl::StrCat("topic manager: open failed: ", loaded.ToString()));
    return loaded;
  }
  manager->ScheduleMaintenance();
  return manager;
}

absl::Status TopicManager::Load() {
  // The data directory and its parents; each level's entry may be new, or left unsynced by an
  // earlier incarnation, so every parent is synced once before the first metadata write.
  if (!data_dir_.empty()) {
    std::string path;
    for (absl::string_view component : absl::StrSplit(data_dir_, '/')) {
      const std::string parent = path;
      path = JoinDiskPath(path, component);
      if (!disk_.Exists(path)) {
        if (absl::Status created = disk_.CreateDirectory(path); !created.ok()) {
          return WithContext(created, absl::StrCat("creating data directory '", data_dir_, "'"));
        }
      }
      ancestors_unsynced_.push_back(parent);
    }
  }

  absl::StatusOr<std::vector<PersistedTopic>> persisted = ReadMetadataFile();
  if (!persisted.ok()) return persisted.status();
  const std::string metadata_path = JoinDiskPath(data_dir_, kMetadataFileName);
  MetadataDelta delta(pending_image_);
  for (const PersistedTopic& topic : *persisted) {
    if (absl::Status added = delta.CreateTopic(topic.name, topic.id, topic.partition_count,
                                               topic.configs, env_.node_id());
        !added.ok()) {
      return absl::DataLossError(absl::StrCat("metadata file '", metadata_path,
                                              "' holds an invalid topic: ", added.message()));
    }
  }
  pending_image_ = delta.Build();
  image_ = pending_image_;

  const std::string temp_path = JoinDiskPath(data_dir_, kMetadataTempFileName);
  if (disk_.Exists(temp_path)) {
    // A replacement that a crash interrupted before its rename: the metadata file is what counts.
    if (absl::Status removed = disk_.Remove(temp_path); !removed.ok()) {
      return WithContext(removed, absl::StrCat("removing '", temp_path, "'"));
    }
    data_dir_dirty_ = true;
  }
  if (absl::Status removed = RemoveLeftoverDirectories(); !removed.ok()) return removed;

  env_.Log(LogLevel::kInfo,
           absl::StrCat("topic manager: opening ", image_.topics().size(), " topics with ",
                        image_.partition_count_total(), " partitions in data directory '",
                        data_dir_, "'"));
  for (const auto& [name, info] : image_.topics()) {
    absl::StatusOr<storage::LogConfig> config = ResolveLogConfig(defaults_.log, info.configs);
    if (!config.ok()) return WithContext(config.status(), absl::StrCat("topic '", name, "'"));
    Topic topic;
    topic.id = info.id;
    for (int32_t partition = 0; partition < info.partition_count(); ++partition) {
      const std::string directory = PartitionDirectory(name, partition);
      if (!disk_.Exists(directory)) {
        // Creation syncs the directories before the metadata names the topic, so this is damage
        // or tampering; the partition starts empty rather than keeping the node down.
        env_.Log(LogLevel::kWarning, absl::StrCat("topic manager: partition directory '",
                                                  directory, "' is missing; it starts empty"));
      }
      absl::StatusOr<std::unique_ptr<storage::PartitionLog>> log =
          storage::PartitionLog::Open(env_, directory, *config);
      if (!log.ok()) {
        return WithContext(log.status(),
                           absl::StrCat("topic '", name, "' partition ", partition));
      }
      topic.logs.push_back(*std::move(log));
    }
    env_.Log(LogLevel::kInfo,
             absl::StrCat("topic manager: opened topic '", name, "' (id ", info.id.ToString(), ", ",
                          info.partition_count(), " partitions)"));
    live_.emplace(name, std::move(topic));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PersistedTopic>> TopicManager::ReadMetadataFile() {
  const std::string path = JoinDiskPath(data_dir_, kMetadataFileName);
  if (!disk_.Exists(path)) {
    env_.Log(LogLevel::kInfo,
             absl::StrCat("topic manager: no metadata file '", path, "': starting with no topics"));
    return std::vector<PersistedTopic>{};
  }
  std::string previous;
  absl::Status last;
  bool damaged = false;
  for (int attempt = 0; attempt < kMetadataReadAttemptsMax; ++attempt) {
    absl::StatusOr<std::string> bytes = ReadWholeFile(disk_, path, kMetadataFileBytesMax);
    if (!bytes.ok()) {
      damaged = absl::IsResourceExhausted(bytes.status());  // larger than any valid file
      last = bytes.status();
      if (damaged) break;
      continue;
    }
    absl::StatusOr<std::vector<PersistedTopic>> topics = DecodeMetadataFile(*bytes);
    if (topics.ok()) return topics;
    damaged = true;
    last = topics.status();
    // The same bytes twice in a row are what the medium holds, not a bad transfer.
    if (attempt > 0 && *bytes == previous) break;
    previous = *std::move(bytes);
  }
  if (damaged) {
    return absl::DataLossError(
        absl::StrCat("metadata file '", path, "' is damaged: ", last.message()));
  }
  return WithContext(last, absl::StrCat("reading metadata file '", path, "'"));
}

absl::Status TopicManager::RemoveLeftoverDirectories() {
  absl::StatusOr<std::vector<std::string>> entries = disk_.List(data_dir_);
  if (!entries.ok()) {
    return WithContext(entries.status(), absl::StrCat("listing data directory '", data_dir_, "'"));
  }
  for (const std::string& entry : *entries) {
    // Files named "__runnel_*" belong to the node itself (this manager's metadata file, the
    // producer id allocator's file, their temporary files): not partition directories, and
    // nothing to warn about.
    if (absl::StartsWith(entry, kNodeFilePrefix)) continue;
    const std::optional<PartitionDirectoryName> parsed = ParsePartitionDirectoryName(entry);
    if (!parsed.has_value()) {
      env_.Log(LogLevel::kWarning,
               absl::StrCat("topic manager: ignoring '", JoinDiskPath(data_dir_, entry),
                            "': not a partition directory"));
      continue;
    }
    const TopicInfo* topic = pending_image_.FindTopic(parsed->topic);
    if (topic != nullptr && parsed->partition < topic->partition_count()) continue;
    const std::string path = JoinDiskPath(data_dir_, entry);
    if (absl::Status removed = RemoveTree(disk_, path); !removed.ok()) {
      return WithContext(removed, absl::StrCat("removing leftover partition directory '", path, "'"));
    }
    data_dir_dirty_ = true;
    ++stats_.leftover_directories_removed;
    env_.Log(LogLevel::kWarning,
             absl::StrCat("topic manager: removed partition directory '", path,
                          "': the metadata does not list it (a deletion interrupted by a crash, or "
                          "a creation that never became durable)"));
  }
  return absl::OkStatus();
}

void TopicManager::Close(Callback done) {
  assert(!closing_);
  closing_ = true;
  close_done_ = std::move(done);
  if (maintenance_timer_ != kNoTimer) {
    env_.clock().CancelTimer(maintenance_timer_);
    maintenance_timer_ = kNoTimer;
  }
  env_.Log(LogLevel::kInfo, absl::StrCat("topic manager: closing ", live_.size() + deleting_.size(),
                                         " topics"));
  MaybeFinishClose();
}

void TopicManager::MaybeFinishClose() {
  if (!closing_ || logs_closing_) return;
  if (write_scheduled_ || write_in_flight_) return;
  if (write_failed_.ok() && version_durable_ < version_accepted_) return;
  for (const auto& [name, topic] : deleting_) {
    if (topic.removal_started) return;
  }
  logs_closing_ = true;
  std::vector<storage::PartitionLog*> logs;
  for (const auto* topics : {&live_, &deleting_}) {
    for (const auto& [name, topic] : *topics) {
      for (const auto& log : topic.logs) logs.push_back(log.get());
    }
  }
  CloseLogs(std::move(logs), [this](const absl::Status& status) {
    absl::Status result = write_failed_.ok() ? status : write_failed_;
    env_.Log(result.ok() ? LogLevel::kInfo : LogLevel::kError,
             absl::StrCat("topic manager: closed: ", result.ToString()));
    Callback done = std::move(close_done_);
    close_done_ = nullptr;
    if (done != nullptr) done(result);
  });
}

void TopicManager::CloseLogs(std::vector<storage::PartitionLog*> logs, Callback then) {
  struct Progress {
    size_t remaining = 0;
    absl::Status first_error;
    Callback then;
  };
  auto progress = std::make_shared<Progress>();
  // One extra count held by this function, so that logs completing synchronously cannot finish
  // the whole before every Close() was called.
  progress->remaining = logs.size() + 1;
  progress->then = std::move(then);
  auto one_done = [this, progress](const absl::Status& status) {
    if (!status.ok() && progress->first_error.ok()) progress->first_error = status;
    if (--progress->remaining > 0) return;
    env_.clock().ScheduleAfter(0, Guarded([progress] {
      Callback then = std::move(progress->then);
      then(progress->first_error);
    }));
  };
  for (storage::PartitionLog* log : logs) log->Close(Guarded(one_done));
  one_done(absl::OkStatus());
}

// ---------------------------------------------------------------------------------------------
// Changes.

absl::Status TopicManager::CheckAcceptingChanges() const {
  if (closing_) return absl::FailedPreconditionError("the topic manager is closing");
  if (!write_failed_.ok()) {
    return absl::UnavailableError(absl::StrCat("an earlier metadata write failed (",
                                               write_failed_.message(),
                                               "); restart the node to recover"));
  }
  if (version_accepted_ - version_durable_ >= kChangesPendingMax) {
    return absl::UnavailableError(absl::StrCat(
        kChangesPendingMax, " metadata changes are waiting to become durable; retry later"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TopicId> TopicManager::NewTopicId() const {
  for (int draw = 0; draw < kTopicIdDrawsMax; ++draw) {
    const TopicId id = TopicId::Generate(env_.random());
    bool used = pending_image_.FindTopicById(id) != nullptr;
    for (const auto& [name, topic] : deleting_) used = used || topic.id == id;
    if (!used) return id;
  }
  return absl::UnavailableError(
      absl::StrCat("no unused topic id in ", kTopicIdDrawsMax, " draws"));
}

std::string TopicManager::PartitionDirectory(absl::string_view topic, int32_t partition) const {
  return JoinDiskPath(data_dir_, absl::StrCat(topic, "-", partition));
}

absl::StatusOr<TopicManager::TopicPlan> TopicManager::PlanCreateTopic(
    absl::string_view name, int32_t partition_count, const TopicConfigOverrides& configs) const {
  if (partition_count == kDefaultPartitionCount) partition_count = defaults_.num_partitions;
  if (absl::Status accepting = CheckAcceptingChanges(); !accepting.ok()) return accepting;
  if (absl::Status valid = ValidateTopicName(name); !valid.ok()) return valid;
  if (deleting_.contains(name)) {
    return absl::UnavailableError(
        absl::StrCat("topic '", name, "' is still being deleted; retry shortly"));
  }
  absl::StatusOr<TopicId> id = NewTopicId();
  if (!id.ok()) return id.status();
  MetadataDelta delta(pending_image_);
  if (absl::Status created =
          delta.CreateTopic(std::string(name), *id, partition_count, configs, env_.node_id());
      !created.ok()) {
    return created;
  }
  absl::StatusOr<storage::LogConfig> config = ResolveLogConfig(defaults_.log, configs);
  if (!config.ok()) return config.status();
  return TopicPlan{.image = delta.Build(),
                   .id = *id,
                   .partition_count = partition_count,
                   .config = *config};
}

absl::Status TopicManager::ValidateCreateTopic(absl::string_view name, int32_t partition_count,
                                               const TopicConfigOverrides& configs) const {
  return PlanCreateTopic(name, partition_count, configs).status();
}

absl::Status TopicManager::CreateTopic(std::string name, int32_t partition_count,
                                       TopicConfigOverrides configs, Callback done) {
  absl::StatusOr<TopicPlan> plan = PlanCreateTopic(name, partition_count, configs);
  if (!plan.ok()) return plan.status();
  partition_count = plan->partition_count;

  // Every partition directory exists before the metadata that names the topic is written (the
  // write syncs the data directory first). A directory of this name can only be a leftover: the
  // topic is in neither map.
  Topic topic;
  topic.id = plan->id;
  data_dir_dirty_ = true;
  for (int32_t partition = 0; partition < partition_count; ++partition) {
    const std::string directory = PartitionDirectory(name, partition);
    absl::Status opened = RemoveTree(disk_, directory);
    if (opened.ok()) {
      absl::StatusOr<std::unique_ptr<storage::PartitionLog>> log =
          storage::PartitionLog::Open(env_, directory, plan->config);
      if (log.ok()) {
        topic.logs.push_back(*std::move(log));
        continue;
      }
      opened = log.status();
    }
    // Undo what was made; whatever stays behind is not in the metadata, so Open() removes it.
    topic.logs.clear();
    for (int32_t made = 0; made <= partition; ++made) {
      static_cast<void>(RemoveTree(disk_, PartitionDirectory(name, made)));
    }
    return WithContext(opened, absl::StrCat("creating topic '", name, "' partition ", partition));
  }
  env_.Log(LogLevel::kInfo,
           absl::StrCat("topic manager: creating topic '", name, "' (id ", plan->id.ToString(),
                        ", ", partition_count, " partitions)"));
  live_.emplace(name, std::move(topic));
  AcceptChange(std::move(plan->image), nullptr, std::move(done));
  return absl::OkStatus();
}

absl::Status TopicManager::DeleteTopic(absl::string_view name, Callback done) {
  if (absl::Status accepting = CheckAcceptingChanges(); !accepting.ok()) return accepting;
  MetadataDelta delta(pending_image_);
  if (absl::Status deleted = delta.DeleteTopic(name); !deleted.ok()) return deleted;
  auto it = live_.find(name);
  assert(it != live_.end());
  const TopicId id = it->second.id;
  std::string key = it->first;
  const bool inserted = deleting_.emplace(key, std::move(it->second)).second;
  assert(inserted);
  static_cast<void>(inserted);
  live_.erase(it);
  env_.Log(LogLevel::kInfo, absl::StrCat("topic manager: deleting topic '", name, "'"));
  AcceptChange(
      delta.Build(),
      [this, key, id](const absl::Status& status) {
        if (status.ok()) StartRemoval(key, id);
      },
      std::move(done));
  return absl::OkStatus();
}

absl::Status TopicManager::ValidateAlterTopicConfig(absl::string_view name,
                                                    const TopicConfigOverrides& configs) const {
  if (absl::Status accepting = CheckAcceptingChanges(); !accepting.ok()) return accepting;
  MetadataDelta delta(pending_image_);
  if (absl::Status altered = delta.AlterTopicConfigs(name, configs); !altered.ok()) return altered;
  return ResolveLogConfig(defaults_.log, configs).status();
}

absl::Status TopicManager::AlterTopicConfig(absl::string_view name, TopicConfigOverrides configs,
                                            Callback done) {
  if (absl::Status accepting = CheckAcceptingChanges(); !accepting.ok()) return accepting;
  MetadataDelta delta(pending_image_);
  if (absl::Status altered = delta.AlterTopicConfigs(name, configs); !altered.ok()) return altered;
  absl::StatusOr<storage::LogConfig> config = ResolveLogConfig(defaults_.log, configs);
  if (!config.ok()) return config.status();
  auto it = live_.find(name);
  assert(it != live_.end());
  const TopicId id = it->second.id;
  AcceptChange(
      delta.Build(),
      [this, key = it->first, id, config = *config](const absl::Status& status) {
        if (!status.ok()) return;
        auto topic = live_.find(key);
        if (topic == live_.end() || topic->second.id != id) return;  // deleted since
        for (size_t partition = 0; partition < topic->second.logs.size(); ++partition) {
          if (absl::Status updated = topic->second.logs[partition]->UpdateConfig(config);
              !updated.ok()) {
            env_.Log(LogLevel::kError,
                     absl::StrCat("topic manager: topic '", key, "' partition ", partition,
                                  " refused its new config: ", updated.ToString()));
          }
        }
      },
      std::move(done));
  return absl::OkStatus();
}

absl::Status TopicManager::ValidateReplicationFactor(int32_t replication_factor) const {
  if (replication_factor == -1 || replication_factor == 1) return absl::OkStatus();
  return TopicRequestErrorStatus(
      TopicRequestError::kInvalidReplicationFactor,
      absl::StrCat("replication factor ", replication_factor,
                   " is not possible: this single-node cluster holds one replica of each "
                   "partition (use 1, or -1 for the default)"));
}

absl::Status TopicManager::RegisterBroker(BrokerInfo broker) {
  if (closing_) return absl::FailedPreconditionError("the topic manager is closing");
  MetadataDelta pending(pending_image_);
  if (absl::Status registered = pending.RegisterBroker(broker); !registered.ok()) {
    return registered;
  }
  // Registrations are not persisted, so they reach the published image at once as well.
  MetadataDelta published(image_);
  const absl::Status registered = published.RegisterBroker(std::move(broker));
  assert(registered.ok());
  static_cast<void>(registered);
  pending_image_ = pending.Build();
  image_ = published.Build();
  return absl::OkStatus();
}

void TopicManager::AcceptChange(MetadataImage image, Callback internal, Callback done) {
  pending_image_ = std::move(image);
  ++version_accepted_;
  std::vector<Callback>& callbacks = durable_callbacks_[version_accepted_];
  if (internal != nullptr) callbacks.push_back(std::move(internal));
  if (done != nullptr) callbacks.push_back(std::move(done));
  ScheduleWrite();
}

// ---------------------------------------------------------------------------------------------
// Metadata writes.

void TopicManager::ScheduleWrite() {
  if (write_scheduled_ || write_in_flight_) return;
  write_scheduled_ = true;
  env_.clock().ScheduleAfter(0, Guarded([this] {
    write_scheduled_ = false;
    MaybeStartWrite();
  }));
}

void TopicManager::MaybeStartWrite() {
  if (write_in_flight_ || !write_failed_.ok() || version_durable_ >= version_accepted_) return;
  write_in_flight_ = true;
  auto write = std::make_shared<MetadataWrite>();
  write->version = version_accepted_;
  write->image = pending_image_;
  write->bytes = EncodeMetadataFile(PersistedTopicsOf(pending_image_));
  ContinueWrite(write);
}

void TopicManager::ContinueWrite(const std::shared_ptr<MetadataWrite>& write) {
  using Step = MetadataWrite::Step;
  auto resume = [this, write](const absl::Status& status) {
    if (!status.ok()) {
      FailWrites(status);
      return;
    }
    ContinueWrite(write);
  };
  switch (write->step) {
    case Step::kAncestors:
      if (!ancestors_unsynced_.empty()) {
        const std::string directory = ancestors_unsynced_.back();
        ancestors_unsynced_.pop_back();
        disk_.SyncDirectory(directory, Guarded(resume));
        return;
      }
      write->step = Step::kDataDirectoryBefore;
      [[fallthrough]];
    case Step::kDataDirectoryBefore:
      write->step = Step::kWriteTemp;
      if (data_dir_dirty_) {
        // Makes partition directories created (and removed) so far durable before the metadata
        // that names (or no longer names) them: the snapshot is taken now.
        data_dir_dirty_ = false;
        disk_.SyncDirectory(data_dir_, Guarded(resume));
        return;
      }
      [[fallthrough]];
    case Step::kWriteTemp: {
      write->step = Step::kRename;
      const std::string temp_path = JoinDiskPath(data_dir_, kMetadataTempFileName);
      if (disk_.Exists(temp_path)) {
        if (absl::Status removed = disk_.Remove(temp_path); !removed.ok()) {
          FailWrites(removed);
          return;
        }
      }
      absl::StatusOr<std::unique_ptr<File>> opened =
          disk_.Open(temp_path, OpenMode::kCreateExclusive);
      if (!opened.ok()) {
        FailWrites(opened.status());
        return;
      }
      std::shared_ptr<File> file = *std::move(opened);
      if (absl::StatusOr<uint64_t> appended = file->Append(write->bytes); !appended.ok()) {
        FailWrites(appended.status());
        return;
      }
      file->Sync(Guarded([resume, file](const absl::Status& status) mutable { resume(status); }));
      return;
    }
    case Step::kRename: {
      write->step = Step::kDone;
      if (absl::Status renamed = disk_.Rename(JoinDiskPath(data_dir_, kMetadataTempFileName),
                                              JoinDiskPath(data_dir_, kMetadataFileName));
          !renamed.ok()) {
        FailWrites(renamed);
        return;
      }
      disk_.SyncDirectory(data_dir_, Guarded(resume));
      return;
    }
    case Step::kDone:
      FinishWrite(write);
      return;
  }
}

void TopicManager::FinishWrite(const std::shared_ptr<MetadataWrite>& write) {
  write_in_flight_ = false;
  assert(write->version > version_durable_);
  version_durable_ = write->version;
  ++stats_.metadata_writes;
  // Broker registrations are not persisted and may have changed while the write was in flight.
  MetadataImage published = write->image;
  if (published.brokers() != pending_image_.brokers()) {
    MetadataDelta delta(published);
    for (const auto& [node, broker] : pending_image_.brokers()) {
      const absl::Status registered = delta.RegisterBroker(broker);
      assert(registered.ok());
      static_cast<void>(registered);
    }
    published = delta.Build();
  }
  image_ = std::move(published);
  if (!RunDurableCallbacks(write->version, absl::OkStatus())) return;
  MaybeStartWrite();
  MaybeFinishClose();
}

void TopicManager::FailWrites(const absl::Status& status) {
  assert(!status.ok());
  write_in_flight_ = false;
  write_failed_ = WithContext(
      status, absl::StrCat("writing metadata file '", JoinDiskPath(data_dir_, kMetadataFileName),
                           "'"));
  env_.Log(LogLevel::kError,
           absl::StrCat("topic manager: ", write_failed_.ToString(),
                        "; its durable state is unknown, so no further topic change is accepted "
                        "until the node restarts"));
  if (!RunDurableCallbacks(std::numeric_limits<uint64_t>::max(), write_failed_)) return;
  MaybeFinishClose();
}

bool TopicManager::RunDurableCallbacks(uint64_t version, const absl::Status& status) {
  const std::weak_ptr<TopicManager*> alive = alive_;
  while (!durable_callbacks_.empty() && durable_callbacks_.begin()->first <= version) {
    std::vector<Callback> callbacks = std::move(durable_callbacks_.begin()->second);
    durable_callbacks_.erase(durable_callbacks_.begin());
    for (Callback& callback : callbacks) {
      callback(status);
      if (alive.expired()) return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Deletion.

void TopicManager::StartRemoval(const std::string& name, TopicId id) {
  auto it = deleting_.find(name);
  if (it == deleting_.end() || it->second.id != id || it->second.removal_started) return;
  it->second.removal_started = true;
  std::vector<storage::PartitionLog*> logs;
  for (const auto& log : it->second.logs) logs.push_back(log.get());
  CloseLogs(std::move(logs), [this, name, id](const absl::Status& status) {
    if (!status.ok()) {
      env_.Log(LogLevel::kWarning, absl::StrCat("topic manager: closing deleted topic '", name,
                                                "': ", status.ToString()));
    }
    FinishRemoval(name, id);
  });
}

void TopicManager::FinishRemoval(const std::string& name, TopicId id) {
  auto it = deleting_.find(name);
  if (it == deleting_.end() || it->second.id != id) return;
  const int32_t partition_count = static_cast<int32_t>(it->second.logs.size());
  deleting_.erase(it);  // destroys the closed logs
  for (int32_t partition = 0; partition < partition_count; ++partition) {
    const std::string directory = PartitionDirectory(name, partition);
    if (absl::Status removed = RemoveTree(disk_, directory); !removed.ok()) {
      env_.Log(LogLevel::kWarning,
               absl::StrCat("topic manager: could not remove '", directory, "' (", removed.ToString(),
                            "); the next start removes it"));
    }
  }
  // The removals become durable with the next metadata write, or are redone by Open() after a
  // crash: the metadata no longer lists the topic.
  data_dir_dirty_ = true;
  ++stats_.topics_deleted;
  env_.Log(LogLevel::kInfo, absl::StrCat("topic manager: deleted topic '", name, "'"));
  MaybeFinishClose();
}

// ---------------------------------------------------------------------------------------------
// Lookups.

storage::PartitionLog* TopicManager::Find(absl::string_view topic, int32_t partition) const {
  const TopicInfo* info = image_.FindTopic(topic);
  if (info == nullptr || partition < 0 || partition >= info->partition_count()) return nullptr;
  const TopicId& id = info->id;
  for (const auto* topics : {&live_, &deleting_}) {
    auto it = topics->find(topic);
    if (it != topics->end() && it->second.id == id) {
      assert(static_cast<size_t>(partition) < it->second.logs.size());
      return it->second.logs[static_cast<size_t>(partition)].get();
    }
  }
  return nullptr;
}

absl::StatusOr<storage::LogConfig> TopicManager::TopicLogConfig(absl::string_view topic) const {
  const TopicInfo* info = image_.FindTopic(topic);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("topic '", topic, "' does not exist"));
  return ResolveLogConfig(defaults_.log, info->configs);
}

absl::StatusOr<std::vector<ConfigDescription>> TopicManager::DescribeTopicConfig(
    absl::string_view topic) const {
  const TopicInfo* info = image_.FindTopic(topic);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("topic '", topic, "' does not exist"));
  return server::DescribeTopicConfig(defaults_.log, info->configs);
}

// ---------------------------------------------------------------------------------------------
// Maintenance.

void TopicManager::ScheduleMaintenance() {
  assert(maintenance_timer_ == kNoTimer);
  maintenance_timer_ =
      env_.clock().ScheduleAfter(kMaintenanceIntervalMs * 1000, Guarded([this] {
                                   maintenance_timer_ = kNoTimer;
                                   RunMaintenanceRound();
                                 }));
}

void TopicManager::RunMaintenanceRound() {
  if (closing_) return;
  // Collected first: a log's maintenance may complete callbacks that change the topic maps.
  std::vector<storage::PartitionLog*> logs;
  for (const auto& [name, topic] : live_) {
    for (const auto& log : topic.logs) logs.push_back(log.get());
  }
  const std::weak_ptr<TopicManager*> alive = alive_;
  for (storage::PartitionLog* log : logs) {
    log->RunMaintenance();
    if (alive.expired()) return;
    if (closing_) return;  // a callback closed the manager: its logs are closing
  }
  ++stats_.maintenance_rounds;
  if (!closing_) ScheduleMaintenance();
}

}  // namespace runnel::server
