// The snapshot format of a batch of envs: a header naming the env, its options, every size and the batch's first env
// index, the state bytes, and a checksum over all of it. A restore refuses a snapshot of another env, other options,
// sizes or first env index, a damaged one, or one whose state an env could not have reached, before anything is
// written. Host code.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/state_check.h"

namespace hmasd {

constexpr char kSnapshotMagic[8] = {'H', 'M', 'A', 'S', 'D', 'S', 'N', 'P'};
// Version 2 appends first_env to the sizes block (so the block's own count still says where the state begins);
// version 1 has no first_env and reads as first_env = 0, so older checkpoints still load.
constexpr uint32_t kSnapshotVersion = 2;
constexpr uint32_t kOldestSnapshotVersion = 1;

// FNV-1a, 64 bits: detects damage, not tampering (the state checks catch states no env can reach).
inline uint64_t fnv1a64(const char* data, size_t size) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t k = 0; k < size; ++k) hash = (hash ^ static_cast<uint8_t>(data[k])) * 0x100000001b3ull;
  return hash;
}

class SnapshotWriter {
 public:
  template <class T>
  void put(const T& value) { bytes(&value, sizeof(T)); }
  void bytes(const void* data, size_t size) { out_.append(static_cast<const char*>(data), size); }
  void text(const std::string& s) {
    put(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  std::string finish() {
    put(fnv1a64(out_.data(), out_.size()));
    return std::move(out_);
  }

 private:
  std::string out_;
};

class SnapshotReader {
 public:
  explicit SnapshotReader(const std::string& blob) : blob_(blob) {
    if (blob.size() < sizeof(kSnapshotMagic) + sizeof(uint64_t) ||
        std::memcmp(blob.data(), kSnapshotMagic, sizeof(kSnapshotMagic)) != 0)
      throw std::invalid_argument("not an hmasd env snapshot (no HMASDSNP header)");
    end_ = blob.size() - sizeof(uint64_t);
    uint64_t stored;
    std::memcpy(&stored, blob.data() + end_, sizeof(stored));
    if (stored != fnv1a64(blob.data(), end_))
      throw std::invalid_argument("the snapshot is damaged: its checksum does not match its contents");
    at_ = sizeof(kSnapshotMagic);
  }
  template <class T>
  T get() {
    T value;
    bytes(&value, sizeof(T));
    return value;
  }
  void bytes(void* to, size_t size) {
    if (size > end_ - at_) throw std::invalid_argument("the snapshot is truncated");
    std::memcpy(to, blob_.data() + at_, size);
    at_ += size;
  }
  std::string text() {
    const uint32_t size = get<uint32_t>();
    if (size > end_ - at_) throw std::invalid_argument("the snapshot is truncated");
    std::string out = blob_.substr(at_, size);
    at_ += size;
    return out;
  }
  const char* here() const { return blob_.data() + at_; }
  size_t left() const { return end_ - at_; }

 private:
  const std::string& blob_;
  size_t at_ = 0, end_ = 0;
};

// The header: env name, every option's value, the sizes, first_env. `expect_header` names the first difference.
template <class Env>
void put_header(SnapshotWriter& w, const typename Env::Config& config, const std::vector<int32_t>& sizes,
                uint32_t first_env) {
  w.bytes(kSnapshotMagic, sizeof(kSnapshotMagic));
  w.put(kSnapshotVersion);
  w.text(Env::kName);
  const auto& options = Env::options();
  w.put(static_cast<uint32_t>(options.size()));
  for (const auto& option : options) {
    w.text(option.name);
    w.put(option.get(config));
  }
  w.put(static_cast<uint32_t>(sizes.size() + 1));
  for (int32_t size : sizes) w.put(size);
  w.put(first_env);
}

template <class Env>
void expect_header(SnapshotReader& r, const typename Env::Config& config, const std::vector<int32_t>& sizes,
                   const std::vector<const char*>& size_names, uint32_t first_env) {
  const uint32_t version = r.get<uint32_t>();
  if (version < kOldestSnapshotVersion || version > kSnapshotVersion)
    throw std::invalid_argument("snapshot format version " + std::to_string(version) + ", this build reads " +
                                std::to_string(kOldestSnapshotVersion) + " to " + std::to_string(kSnapshotVersion));
  const std::string name = r.text();
  if (name != Env::kName)
    throw std::invalid_argument("the snapshot is of env '" + name + "', not '" + std::string(Env::kName) + "'");
  const auto& options = Env::options();
  const uint32_t count = r.get<uint32_t>();
  if (count != options.size())
    throw std::invalid_argument("the snapshot has " + std::to_string(count) + " options, this env " +
                                std::to_string(options.size()) + " (made by another version?)");
  for (const auto& option : options) {
    const std::string stored_name = r.text();
    const double stored = r.get<double>();
    if (stored_name != option.name)
      throw std::invalid_argument("the snapshot's option '" + stored_name + "' is not this env's '" +
                                  std::string(option.name) + "'");
    const double mine = option.get(config);
    if (!(stored == mine))
      throw std::invalid_argument("the snapshot was made with " + std::string(option.name) + "=" +
                                  option_value_text(option, stored) + ", this env has " + option.name + "=" +
                                  option_value_text(option, mine) + "; make the env with the snapshot's options");
  }
  const bool has_first_env = version >= 2;
  if (r.get<uint32_t>() != sizes.size() + (has_first_env ? 1 : 0))
    throw std::invalid_argument("the snapshot's sizes do not match this env");
  for (size_t k = 0; k < sizes.size(); ++k) {
    const int32_t stored = r.get<int32_t>();
    if (stored != sizes[k])
      throw std::invalid_argument("the snapshot has " + std::string(size_names[k]) + "=" + std::to_string(stored) +
                                  ", this env " + std::to_string(sizes[k]));
  }
  const uint32_t stored_first_env = has_first_env ? r.get<uint32_t>() : 0u;
  if (stored_first_env != first_env)
    throw std::invalid_argument("the snapshot was made with first_env=" + std::to_string(stored_first_env) +
                                ", this env has first_env=" + std::to_string(first_env) +
                                "; make the env with first_env=" + std::to_string(stored_first_env));
}

}  // namespace hmasd
