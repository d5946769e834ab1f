// The one description of an env's options: name, kind, default, bounds, choice names and a way to reach the Config
// field. Each env header lists its options once in a table of these; the bindings, the Python registry and the
// range checks of Env::validate are all built from that table, so no option is re-typed anywhere else.
// Host only: the Config structs stay plain data for device code, the table lives beside them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace hmasd {

enum class OptionKind : int32_t { kInt, kFloat, kDouble, kBool, kChoice };

inline const char* option_kind_name(OptionKind kind) {
  switch (kind) {
    case OptionKind::kInt: return "int";
    case OptionKind::kFloat: return "float";
    case OptionKind::kDouble: return "double";
    case OptionKind::kBool: return "bool";
    case OptionKind::kChoice: return "choice";
  }
  return "?";
}

// Without a bound a number option is still required to be finite (NaN would slip past every comparison).
constexpr double kNoMin = -std::numeric_limits<double>::infinity();
constexpr double kNoMax = std::numeric_limits<double>::infinity();

// One option of Config. Values travel as double: every int32 and float is exact in it, and a choice is the index
// of its name in `choices` (the code the env's step functions compare against).
template <class Config>
struct OptionSpec {
  const char* name;
  OptionKind kind;
  double default_value;
  double min, max;     // inclusive, except min when min_exclusive; an int option's bounds are always finite
  bool min_exclusive;  // "must be > min", for sizes and rates where 0 is meaningless
  const char* const* choices;
  int32_t num_choices;
  const char* doc;
  double (*get)(const Config&);
  void (*set)(Config&, double);

  bool bounded_above() const { return kind == OptionKind::kInt ? max < INT32_MAX : max < kNoMax; }
  bool bounded_below() const { return kind == OptionKind::kInt ? min > INT32_MIN : min > kNoMin; }
};

// Builders, one per field type; `field` is a template argument so the accessors are plain function pointers.
template <class Config, int32_t Config::*field>
OptionSpec<Config> int_option(const char* name, int32_t default_value, int64_t min, int64_t max, const char* doc) {
  return {name, OptionKind::kInt, double(default_value), double(min), double(max), false, nullptr, 0, doc,
          [](const Config& c) { return double(c.*field); },
          [](Config& c, double v) { c.*field = static_cast<int32_t>(v); }};
}

template <class Config, float Config::*field>
OptionSpec<Config> float_option(const char* name, float default_value, double min, double max, bool min_exclusive,
                                const char* doc) {
  return {name, OptionKind::kFloat, double(default_value), min, max, min_exclusive, nullptr, 0, doc,
          [](const Config& c) { return double(c.*field); },
          [](Config& c, double v) { c.*field = static_cast<float>(v); }};
}

template <class Config, double Config::*field>
OptionSpec<Config> double_option(const char* name, double default_value, double min, double max, bool min_exclusive,
                                 const char* doc) {
  return {name, OptionKind::kDouble, default_value, min, max, min_exclusive, nullptr, 0, doc,
          [](const Config& c) { return c.*field; }, [](Config& c, double v) { c.*field = v; }};
}

template <class Config, bool Config::*field>
OptionSpec<Config> bool_option(const char* name, bool default_value, const char* doc) {
  return {name, OptionKind::kBool, default_value ? 1.0 : 0.0, 0.0, 1.0, false, nullptr, 0, doc,
          [](const Config& c) { return c.*field ? 1.0 : 0.0; }, [](Config& c, double v) { c.*field = v != 0.0; }};
}

// A string option stored as an int32 code: the index of its name in `choices` (N names).
template <class Config, int32_t Config::*field, size_t N>
OptionSpec<Config> choice_option(const char* name, const char* const (&choices)[N], int32_t default_code,
                                 const char* doc) {
  return {name, OptionKind::kChoice, double(default_code), 0.0, double(N - 1), false, choices,
          static_cast<int32_t>(N), doc, [](const Config& c) { return double(c.*field); },
          [](Config& c, double v) { c.*field = static_cast<int32_t>(v); }};
}

inline std::string format_option_number(double v, OptionKind kind) {
  if (kind == OptionKind::kInt || kind == OptionKind::kChoice) return std::to_string(static_cast<int64_t>(v));
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

// A value of `spec` as a user writes it: 8 for an int, 0.5 for a number, True for a bool, 'team' for a choice.
template <class Config>
std::string option_value_text(const OptionSpec<Config>& spec, double value) {
  if (spec.kind == OptionKind::kBool) return value != 0.0 ? "True" : "False";
  if (spec.kind == OptionKind::kChoice && value >= 0 && value < spec.num_choices)
    return std::string("'") + spec.choices[static_cast<int32_t>(value)] + "'";
  return format_option_number(value, spec.kind);
}

inline std::string choice_list(const char* const* choices, int32_t n) {
  std::string out;
  for (int32_t k = 0; k < n; ++k) out += std::string(k ? ", '" : "'") + choices[k] + "'";
  return out;
}

// Why `value` is not a valid value of `spec` (for example "num_agents must be in [1, 16], got 0"), or "" when it
// is. Only the option's own bounds: checks across options stay in each Env::validate.
template <class Config>
std::string option_range_error(const OptionSpec<Config>& spec, double value) {
  const std::string got = ", got " + format_option_number(value, spec.kind);
  const std::string name = spec.name;
  switch (spec.kind) {
    case OptionKind::kBool: return "";
    case OptionKind::kChoice:
      if (value >= 0 && value < spec.num_choices) return "";
      return name + " must be one of " + choice_list(spec.choices, spec.num_choices) + got;
    default: break;
  }
  if (!std::isfinite(value) && !(spec.bounded_below() && spec.bounded_above()))
    return name + " must be finite" + got;
  const bool above_min = spec.min_exclusive ? value > spec.min : value >= spec.min;
  if (above_min && value <= spec.max) {  // NaN fails both comparisons and lands below
    if (spec.kind == OptionKind::kFloat && std::fabs(value) > std::numeric_limits<float>::max())
      return name + " must fit in float32" + got;
    return "";
  }
  const std::string lo = format_option_number(spec.min, spec.kind), hi = format_option_number(spec.max, spec.kind);
  if (spec.bounded_above() && spec.bounded_below()) return name + " must be in [" + lo + ", " + hi + "]" + got;
  if (spec.bounded_above()) return name + " must be <= " + hi + got;
  return name + (spec.min_exclusive ? " must be > " : " must be >= ") + lo + got;
}

// Throws std::invalid_argument "<env>: <reason>" for the first option of `c` outside its table bounds.
template <class Config>
void check_option_ranges(const char* env_name, const std::vector<OptionSpec<Config>>& table, const Config& c) {
  for (const OptionSpec<Config>& spec : table) {
    const std::string error = option_range_error(spec, spec.get(c));
    if (!error.empty()) throw std::invalid_argument(std::string(env_name) + ": " + error);
  }
}

}  // namespace hmasd
