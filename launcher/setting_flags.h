// The rankserve command's flag for each runtime Setting, and errors worded for its users: where the
// runtime's message names a setting in its own words, they see the flag that sets it. Used where
// errors leave for the user: main()'s FATAL line, a rank's failure reason, the HTTP error bodies.
#pragma once

#include <exception>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/setting_error.h"

namespace rankserve::launcher {

// The flag that sets `setting` ("--tp"); each also has its RANKSERVE_* mirror (options.h).
std::string_view flag_of(Setting setting) noexcept;

// The message of `error` as the command's user reads it: a SettingError's setting named by its
// flag (message_naming), any other exception's what().
std::string user_message(const std::exception& error);

// A plain Error of `error`'s category with user_message() as its message: for errors that leave a
// launcher function whose callers show what() (plan_layout).
Error with_flags(const Error& error);

}  // namespace rankserve::launcher
