// Errors are values: one Error type and a Result<T> shaped like C++23's std::expected.
//
// Every fallible function in the project returns Result<T> (or Result<void>). Exceptions never
// cross module boundaries; the few libraries that throw (nlohmann::json) are wrapped at the
// door. An Error carries a category (Errc) for callers that branch on it, the errno that caused
// it (0 when synthetic), and a message meant for a human that names the bad input.
#pragma once

#include <cerrno>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sshuttle {

enum class Errc {
    InvalidArgument,   // bad input from a user or peer: a subnet, an option, a request field
    Protocol,          // a peer broke the wire protocol
    TooLarge,          // a length or count beyond its cap
    Io,                // a system call failed (sys_errno says which)
    PermissionDenied,  // the caller may not do this
    NotFound,          // a name did not resolve, a file or object is absent
    Timeout,           // a deadline passed
    Backend,           // an external tool or library (nft, iptables, polkit) failed
    Internal,          // a broken invariant: a bug in this project
};

// The stable, machine-readable name of a category ("InvalidArgument"), used in logs and in the
// error names of the control and helper interfaces.
const char* errc_name(Errc code) noexcept;

struct Error {
    Errc code = Errc::Internal;
    int sys_errno = 0;  // 0 when the error is not caused by a failed system call
    std::string message;

    Error() = default;
    Error(Errc c, std::string msg, int err = 0) : code(c), sys_errno(err), message(std::move(msg)) {}

    // An Io error from the current errno: "what: strerror(errno)".
    static Error from_errno(const std::string& what, int err = errno);

    // "message" or "message: strerror(sys_errno)" when the errno is not already in the message.
    std::string to_string() const;

    // A new error with "context: " in front of the message; code and errno are kept.
    Error with_context(const std::string& context) const;
};

template <class T>
class [[nodiscard]] Result {
public:
    static_assert(!std::is_same_v<T, Error>, "Result<Error> is ambiguous");

    Result(const T& value) : v_(value) {}  // NOLINT: implicit like std::expected
    Result(T&& value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}
    template <class U, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                !std::is_same_v<std::decay_t<U>, T> &&
                                                !std::is_same_v<std::decay_t<U>, Error>>>
    Result(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { return std::get<1>(v_); }
    Error&& error() && { return std::get<1>(std::move(v_)); }

    template <class U>
    T value_or(U&& fallback) const& {
        return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
    }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const Error& error() const& { return error_; }
    Error&& error() && { return std::move(error_); }

private:
    Error error_;
    bool ok_ = true;
};

// The success value of Result<void>, for symmetry: `return ok();`.
inline Result<void> ok() { return {}; }

}  // namespace sshuttle
