// TopicManager: owns one node's topics, their partition logs and the node's metadata image.
//
// Data directory layout (the one home of this description; a path "<data-dir>/x" is "x" when the
// data directory is the Disk's root, ""):
//   <data-dir>/__runnel_metadata       the node's persisted topics (format: metadata_file.h)
//   <data-dir>/__runnel_metadata.tmp   a replacement being written; removed at Open()
//   <data-dir>/<topic>-<partition>/    one partition log per partition, as Kafka lays them out
//                                      (the files inside: storage/partition_log.h)
// Open() removes every "<topic>-<partition>" directory that the metadata file does not list (a
// deletion interrupted by a crash, or a creation whose metadata never became durable) and leaves
// any other entry alone: silently for the node's own files (named "__runnel_*"), with a warning
// otherwise. A data directory without a metadata file is an empty one:
// its partition directories are removed too, so never point a node at a directory it did not
// create.
//
// Until a Raft controller quorum exists the node is its own controller: it builds its metadata
// image with MetadataDelta (metadata_image.h) and persists the topic part of it itself. Every
// partition is led by this node at leader epoch 0.
//
// Durability and visibility:
// - A change (create, delete, alter) is accepted at once and reported through its `done` callback
//   once the metadata file that holds it is durable. Each write replaces the file crash-safely:
//   sync the data directory (so partition directories created or removed before it are durable),
//   write the temporary file, sync it, rename it over the metadata file, sync the data directory.
//   Changes accepted while a write is in flight share the next one.
// - image() is the last durable image: a topic becomes visible (image(), Find()) when its creation
//   is durable, and stays visible until its deletion is. So nothing can be acknowledged on a topic
//   that a crash could make disappear.
// - Crash safety: after a crash a topic exists with all its partitions or not at all. CreateTopic
//   creates every partition directory before the metadata that names the topic is written; Open()
//   removes directories of topics the metadata lacks. DeleteTopic makes the removal from the
//   metadata durable first and only then closes and removes the partition directories.
// - A failed metadata write (I/O error, disk full) leaves the file's durable state unknown: every
//   waiting change fails with that error, and the manager refuses further changes (kUnavailable)
//   until the node restarts and Open() reads what is actually durable. Reads go on serving image().
//
// Status codes (the server maps them to Kafka error codes in one place): kAlreadyExists (the
// topic exists), kNotFound (no such topic), kInvalidArgument (bad name, partition count, replication
// factor or config, with a TopicRequestError saying which; the message names the field and value),
// kResourceExhausted (a limit of metadata_image.h / topic_config.h, or the disk is full),
// kUnavailable (retry: a deletion of that name is still in progress, too many changes waiting, an
// I/O error, or an earlier metadata write failed), kFailedPrecondition (the manager is closing),
// kDataLoss (a damaged metadata file or partition log at Open()).
//
// Everything runs on the node's event loop. Callbacks never run before the call that registered
// them returns. Destroying the manager without Close() is a crash as far as the disk is concerned:
// nothing more is synced and no callback runs afterwards.
#ifndef RUNNEL_BROKER_SERVER_TOPIC_MANAGER_H_
#define RUNNEL_BROKER_SERVER_TOPIC_MANAGER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "broker/env/env.h"
#include "broker/server/metadata_file.h"
#include "broker/server/metadata_image.h"
#include "broker/server/topic_config.h"
#include "broker/storage/partition_log.h"

namespace runnel::server {

struct TopicManagerStats {
  uint64_t metadata_writes = 0;           // metadata files made durable
  uint64_t maintenance_rounds = 0;        // timer rounds that ran RunMaintenance on every log
  uint64_t leftover_directories_removed = 0;  // by Open()
  uint64_t topics_deleted = 0;            // deletions whose directories are gone
};

class TopicManager {
 public:
  using Callback = absl::AnyInvocable<void(const absl::Status&)>;

  // How often every partition log's RunMaintenance() runs (retention, rolling by age, a bounded
  // compaction step). Compaction progresses one step per round, so the interval is short.
  static constexpr int64_t kMaintenanceIntervalMs = 1000;
  // Open() reads the metadata file up to this many times while it fails its checks, since a read
  // may return flipped bits that a second read does not (disk.h); the same bad bytes twice is damage.
  static constexpr int kMetadataReadAttemptsMax = 3;
  // The most changes accepted but not yet durable; more are refused with kUnavailable.
  static constexpr uint64_t kChangesPendingMax = 4096;
  // A fresh topic id that collides with an existing one is drawn again, at most this many times.
  static constexpr int kTopicIdDrawsMax = 16;
  // CreateTopic's partition count meaning "the broker default" (CreateTopics sends -1).
  static constexpr int32_t kDefaultPartitionCount = -1;

  // Loads the metadata file of `data_dir` (a Disk path; "" is the root; created if missing), removes
  // leftover partition directories, and opens (recovers) every partition log. Missing file: no
  // topics. A damaged file: kDataLoss naming the file, and nothing is removed. A partition log that
  // fails to open fails Open() with its error, prefixed with the topic and partition. Progress is
  // reported through env.Log(). Starts the maintenance timer.
  static absl::StatusOr<std::unique_ptr<TopicManager>> Open(Env& env, std::string data_dir,
                                                            BrokerDefaults defaults);
  ~TopicManager();

  TopicManager(const TopicManager&) = delete;
  TopicManager& operator=(const TopicManager&) = delete;

  // What CreateTopic would refuse, without doing anything (CreateTopics with validate_only).
  absl::Status ValidateCreateTopic(absl::string_view name, int32_t partition_count,
                                   const TopicConfigOverrides& configs) const;
  // Creates a topic of `partition_count` partitions (kDefaultPartitionCount: the broker default)
  // with `configs` overriding the broker defaults. Returns an error, and never calls `done`, when
  // the request is refused at once (see ValidateCreateTopic; kUnavailable while a deletion of the
  // same name is still removing its directories); otherwise every partition log is open and `done`
  // (which may be null) runs once, when the topic is durable (OK) or with the error that prevents
  // it.
  absl::Status CreateTopic(std::string name, int32_t partition_count, TopicConfigOverrides configs,
                           Callback done);
  // Deletes a topic: errors as CreateTopic. `done` runs when the deletion is durable; the logs are
  // then closed (their pending durability callbacks complete) and their directories removed.
  absl::Status DeleteTopic(absl::string_view name, Callback done);
  // What AlterTopicConfig would refuse, without doing anything.
  absl::Status ValidateAlterTopicConfig(absl::string_view name,
                                        const TopicConfigOverrides& configs) const;
  // Replaces the topic's config overrides (use ApplyConfigChanges for incremental changes). `done`
  // runs when the change is durable; the partition logs take the new configuration just before.
  absl::Status AlterTopicConfig(absl::string_view name, TopicConfigOverrides configs,
                                Callback done);
  // A single node holds one replica: CreateTopics' replication factor must be 1 or -1 (the
  // default); anything else is kInvalidArgument (kInvalidReplicationFactor).
  absl::Status ValidateReplicationFactor(int32_t replication_factor) const;
  // Adds or replaces a broker registration in the image, at once and in memory only: a node
  // registers itself at every start, once it knows its listener address.
  absl::Status RegisterBroker(BrokerInfo broker);

  // The partition's log, or nullptr when image() has no such topic or partition.
  storage::PartitionLog* Find(absl::string_view topic, int32_t partition) const;
  // The last durable image (see the file comment).
  const MetadataImage& image() const { return image_; }
  // The effective configuration of a topic of image(); kNotFound when absent.
  absl::StatusOr<storage::LogConfig> TopicLogConfig(absl::string_view topic) const;
  // DescribeConfigs for a topic of image(); kNotFound when absent.
  absl::StatusOr<std::vector<ConfigDescription>> DescribeTopicConfig(
      absl::string_view topic) const;
  const BrokerDefaults& defaults() const { return defaults_; }
  const std::string& data_dir() const { return data_dir_; }
  const TopicManagerStats& stats() const { return stats_; }

  // Clean shutdown. Refuses new changes at once (kFailedPrecondition), stops the maintenance timer,
  // waits for changes in flight to become durable and for deletions in progress to finish, then
  // closes every partition log (each writes its clean-shutdown marker). `done` runs once all of
  // that is durable, with the first error met (including an earlier failed metadata write).
  // Call it at most once.
  void Close(Callback done);
  bool closing() const { return closing_; }

 private:
  // One topic's partition logs, indexed by partition.
  struct Topic {
    TopicId id;
    std::vector<std::unique_ptr<storage::PartitionLog>> logs;
    // Deleted topics only: the logs are being closed and the directories removed.
    bool removal_started = false;
  };
  struct MetadataWrite;
  // What a valid CreateTopic will do.
  struct TopicPlan {
    MetadataImage image;  // pending_image_ with the topic
    TopicId id;
    int32_t partition_count = 0;  // the default resolved
    storage::LogConfig config;
  };

  TopicManager(Env& env, std::string data_dir, BrokerDefaults defaults);

  absl::Status Load();
  absl::StatusOr<std::vector<PersistedTopic>> ReadMetadataFile();
  absl::Status RemoveLeftoverDirectories();
  absl::Status CheckAcceptingChanges() const;
  // Every check of CreateTopic, in order: accepting changes, the name, no deletion of that name in
  // progress, then the image's rules and the configs.
  absl::StatusOr<TopicPlan> PlanCreateTopic(absl::string_view name, int32_t partition_count,
                                            const TopicConfigOverrides& configs) const;
  absl::StatusOr<TopicId> NewTopicId() const;
  std::string PartitionDirectory(absl::string_view topic, int32_t partition) const;
  // Records an accepted change: `pending_image_` becomes `image`, and `internal` (may be null)
  // then `done` run when it is durable.
  void AcceptChange(MetadataImage image, Callback internal, Callback done);

  // Starts a metadata write on the next turn of the event loop, so that every change accepted in
  // this turn shares it and no callback runs inside the call that made the change.
  void ScheduleWrite();
  void MaybeStartWrite();
  void ContinueWrite(const std::shared_ptr<MetadataWrite>& write);
  void FinishWrite(const std::shared_ptr<MetadataWrite>& write);
  void FailWrites(const absl::Status& status);
  // Runs the callbacks of every change up to `version` with `status`, in order. Returns false if
  // one of them destroyed the manager.
  bool RunDurableCallbacks(uint64_t version, const absl::Status& status);

  // Closes `logs` and then, on a later turn of the event loop (never inside a log's own callback,
  // so the logs may be destroyed), runs `then` with the first error met.
  void CloseLogs(std::vector<storage::PartitionLog*> logs, Callback then);
  void StartRemoval(const std::string& name, TopicId id);
  void FinishRemoval(const std::string& name, TopicId id);

  void ScheduleMaintenance();
  void RunMaintenanceRound();

  void MaybeFinishClose();

  // Wraps a callback so that it does nothing once the manager is gone.
  template <typename F>
  auto Guarded(F callback);

  Env& env_;
  Disk& disk_;
  const std::string data_dir_;
  const BrokerDefaults defaults_;

  // The last durable image (what readers see) and the image with every accepted change.
  MetadataImage image_;
  MetadataImage pending_image_;
  // Topics of pending_image_, and topics deleted from it whose logs still exist, by name.
  std::map<std::string, Topic, std::less<>> live_;
  std::map<std::string, Topic, std::less<>> deleting_;

  // Changes are numbered from 1; version_durable_ <= version_accepted_.
  uint64_t version_accepted_ = 0;
  uint64_t version_durable_ = 0;
  // Per accepted version, what runs when it is durable (internal work first, then `done`).
  std::map<uint64_t, std::vector<Callback>> durable_callbacks_;
  bool write_scheduled_ = false;
  bool write_in_flight_ = false;
  // Set when a partition directory was created or removed since the data directory's last sync
  // began; the next metadata write syncs the directory before writing the file.
  bool data_dir_dirty_ = false;
  // Directories above (and including the parent of) the data directory that may hold unsynced
  // entries from its creation; synced once, before the first metadata write.
  std::vector<std::string> ancestors_unsynced_;
  absl::Status write_failed_;

  TimerId maintenance_timer_ = kNoTimer;

  bool closing_ = false;
  bool logs_closing_ = false;
  Callback close_done_;
  absl::Status close_status_;

  TopicManagerStats stats_;
  // Reset by the destructor; callbacks hold weak references (see Guarded).
  std::shared_ptr<TopicManager*> alive_;
};

}  // namespace runnel::server

#endif  // RUNNEL_BROKER_SERVER_TOPIC_MANAGER_H_
