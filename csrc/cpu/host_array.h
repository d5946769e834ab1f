// A zero-initialised, fixed-size host array: the storage behind every buffer Python sees as a NumPy view.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>

namespace hmasd {

template <class T>
class HostArray {
 public:
  HostArray() = default;
  explicit HostArray(size_t size) : data_(new T[size]()), size_(size) {}
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  void fill_zero() { std::memset(static_cast<void*>(data_.get()), 0, bytes()); }

 private:
  std::unique_ptr<T[]> data_;
  size_t size_ = 0;
};

}  // namespace hmasd
