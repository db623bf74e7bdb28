// Numeric flags of the examples and benchmarks (CLI11). CLI11 2.1 reads an unsigned flag with
// strtoull, which turns "-1" into 2^64 - 1 (a run of hours, or one that never ends) and "010"
// into 8; add_count checks the text first.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <type_traits>

namespace tg::flags {

// A validator for a whole number in [min, max], written in decimal digits: a sign, a
// fraction or a number past max is refused with a message CLI11 prefixes with the flag's name
// ("--epochs: expected a whole number from 1 to 100000, got '-1'").
inline CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
    const std::string range = "from " + std::to_string(min) + " to " + std::to_string(max);
    return CLI::Validator(
        [=](std::string& text) -> std::string {
            const std::string refused = "expected a whole number " + range + ", got '" + text + "'";
            if (text.empty() || text.size() > 20) return refused;
            std::uint64_t v = 0;
            for (char ch : text) {
                if (ch < '0' || ch > '9') return refused;
                const std::uint64_t digit = static_cast<std::uint64_t>(ch - '0');
                if (v > (UINT64_MAX - digit) / 10) return refused;
                v = v * 10 + digit;
            }
            if (v < min || v > max) return refused;
            text = std::to_string(v);  // no leading zeros, which CLI11 would read as octal
            return "";
        },
        "[" + std::to_string(min) + ", " + std::to_string(max) + "]");
}

// app.add_option for an unsigned count bounded to [min, max].
template <class T>
CLI::Option* add_count(CLI::App& app, const std::string& name, T& value, std::uint64_t min, std::uint64_t max,
                       const std::string& help) {
    static_assert(std::is_unsigned<T>::value, "add_count is for unsigned flags");
    return app.add_option(name, value, help)->transform(whole_number(min, max));  // transform: it may rewrite the text
}

}  // namespace tg::flags
