// memory.h — a stand-in for a header Debian's libgloo-dev does not ship.
//
// gloo/transport/tcp/pair.h includes "gloo/common/memory.h" for two pointer
// wrappers it names in member and parameter types; the package installs
// pair.h but not this file. facet includes pair.h only to reach a pair's
// socket and mutex (comm/gloo.cc, gloo_interrupt), which the class declares
// before any member of these types, and calls no function taking them: the
// types must exist and be complete, their insides are never used. CMake
// puts this folder on the include path only when the real header is missing.
#pragma once

#include <memory>

namespace gloo {

// A pointer to an object someone else owns, held only while it is used.
template <typename T>
class NonOwningPtr {
  public:
    NonOwningPtr() = default;
    explicit NonOwningPtr(std::shared_ptr<T> p) : p_(std::move(p)) {}
    T *get() const { return p_.get(); }
    T *operator->() const { return p_.get(); }
    explicit operator bool() const { return static_cast<bool>(p_); }

  private:
    std::shared_ptr<T> p_;
};

// The same, held weakly until it is used.
template <typename T>
class WeakNonOwningPtr {
  public:
    WeakNonOwningPtr() = default;
    NonOwningPtr<T> lock() const { return NonOwningPtr<T>(p_.lock()); }

  private:
    std::weak_ptr<T> p_;
};

} // namespace gloo
