// alice_and_bob: the HMASD paper's two-agent button/diamond toy task (docs/envs.md), one env copy per call.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/env_spec.h"
#include "core/hd.h"
#include "core/options.h"
#include "core/philox.h"
#include "core/state_check.h"

namespace hmasd {

struct AliceAndBobConfig {
  int32_t height = 10;
  int32_t width = 10;
  int32_t max_steps = 100;
};

struct AliceAndBobState {
  int32_t row[2];
  int32_t col[2];
  bool collected[2];
  int32_t t;
};

struct AliceAndBob {
  using Config = AliceAndBobConfig;
  using State = AliceAndBobState;
  static constexpr const char* kName = "alice_and_bob";
  static constexpr int32_t kNumAgents = 2;
  static constexpr int32_t kNumActions = 5;
  using Action = int32_t;  // one discrete action per agent
  static constexpr int32_t kActionWidth = 1;
  static constexpr int32_t kObsDim = 11;
  static constexpr uint32_t kPurposeReset = 1;
  enum Code : int32_t { kEmpty = 0, kWall = 1, kAgent0 = 2, kButton0 = 4, kDiamond0 = 6 };
  static constexpr int32_t kMinSide = 4, kMaxSide = 256;  // a 2 x 2 interior at least; the grid is the state

  // Every option, once (docs/envs.md). The defaults repeat AliceAndBobConfig's initialisers; test_env_options.py
  // holds the two equal.
  static const std::vector<OptionSpec<Config>>& options() {
    static const std::vector<OptionSpec<Config>> table = {
        int_option<Config, &Config::height>("height", 10, kMinSide, kMaxSide, "grid rows, walls included"),
        int_option<Config, &Config::width>("width", 10, kMinSide, kMaxSide, "grid columns, walls included"),
        int_option<Config, &Config::max_steps>("max_steps", 100, 1, INT32_MAX, "episode length limit"),
    };
    return table;
  }

  // A state read from a snapshot: agents inside the walls, flags 0/1, the clock within the episode.
  static void check_state(const Config& c, const State& s, StateCheck& check) {
    for (int32_t i = 0; i < kNumAgents; ++i) {
      check.in_range("row", s.row[i], 1, c.height - 2);
      check.in_range("col", s.col[i], 1, c.width - 2);
      check.flag("collected", &s.collected[i]);
    }
    check.in_range("t", s.t, 0, c.max_steps);
  }

  static void validate(const Config& c) {
    // One message for both sides, kept from before the option table (tests and users match it).
    if (c.height < kMinSide || c.width < kMinSide || c.height > kMaxSide || c.width > kMaxSide)
      throw std::invalid_argument("alice_and_bob: height and width must be in [4, 256], got height=" +
                                  std::to_string(c.height) + ", width=" + std::to_string(c.width));
    check_option_ranges(kName, options(), c);
  }

  static EnvDims dims(const Config& c) { return {kNumAgents, kObsDim, c.height * c.width, kNumActions}; }

  static std::vector<InfoField> info_fields(const Config&) {
    return {{"success", false}, {"diamonds_collected", false}};
  }

  static void obs_bounds(const Config& c, float* low, float* high) {
    const float top = static_cast<float>(std::max(7, std::max(c.height, c.width) - 1));
    for (int32_t k = 0; k < kObsDim; ++k) {
      low[k] = 0.0f;
      high[k] = top;
    }
  }
  static void state_bounds(const Config& c, float* low, float* high) {
    for (int32_t k = 0; k < c.height * c.width; ++k) {
      low[k] = 0.0f;
      high[k] = 7.0f;
    }
  }

  HD static int32_t button_row(const Config&, int32_t) { return 1; }
  HD static int32_t button_col(const Config& c, int32_t i) { return i == 0 ? c.width - 2 : 1; }
  HD static int32_t diamond_row(const Config& c, int32_t) { return c.height - 2; }
  HD static int32_t diamond_col(const Config& c, int32_t i) { return i == 0 ? 1 : c.width - 2; }

  HD static void reset(const Config& c, State& s, const EnvRng& rng) {
    const int32_t inner_w = c.width - 2;
    const int32_t cells = (c.height - 2) * inner_w;
    const int32_t a = uniform_int(rng.word(0, kPurposeReset, 0), cells);
    int32_t b = uniform_int(rng.word(0, kPurposeReset, 1), cells - 1);
    if (b >= a) ++b;
    s.row[0] = 1 + a / inner_w;
    s.col[0] = 1 + a % inner_w;
    s.row[1] = 1 + b / inner_w;
    s.col[1] = 1 + b % inner_w;
    s.collected[0] = s.collected[1] = false;
    s.t = 0;
  }

  HD static bool agent_on(const State& s, int32_t row, int32_t col) {
    return (s.row[0] == row && s.col[0] == col) || (s.row[1] == row && s.col[1] == col);
  }

  HD static StepStatus step(const Config& c, State& s, const Action* actions, float* rewards, const EnvRng&) {
    constexpr int32_t kDrow[5] = {0, 0, -1, 1, 0};
    constexpr int32_t kDcol[5] = {1, -1, 0, 0, 0};
    for (int32_t i = 0; i < kNumAgents; ++i) {
      const int32_t row = s.row[i] + kDrow[actions[i]];
      const int32_t col = s.col[i] + kDcol[actions[i]];
      const bool wall = row <= 0 || col <= 0 || row >= c.height - 1 || col >= c.width - 1;
      if (!wall) {
        s.row[i] = row;
        s.col[i] = col;
      }
    }
    for (int32_t i = 0; i < 2; ++i) {
      const bool pressed = agent_on(s, button_row(c, i), button_col(c, i));
      if (pressed && agent_on(s, diamond_row(c, i), diamond_col(c, i))) s.collected[i] = true;
    }
    const bool success = s.collected[0] && s.collected[1];
    for (int32_t i = 0; i < kNumAgents; ++i) rewards[i] = success ? 1.0f : 0.0f;
    s.t += 1;
    return {success, !success && s.t >= c.max_steps};
  }

  // The occupancy grid is drawn into the state buffer, and the observations are read back from it.
  HD static void observe(const Config& c, const State& s, float* obs, float* state, bool* action_mask) {
    const int32_t w = c.width;
    // Row by row without per-cell branches: the interior runs vectorise.
    float* last_row = state + (c.height - 1) * w;
    for (int32_t col = 0; col < w; ++col) state[col] = last_row[col] = float(kWall);
    for (int32_t row = 1; row < c.height - 1; ++row) {
      float* cells = state + row * w;
      cells[0] = cells[w - 1] = float(kWall);
      for (int32_t col = 1; col < w - 1; ++col) cells[col] = float(kEmpty);
    }
    for (int32_t i = 0; i < 2; ++i) {
      state[button_row(c, i) * w + button_col(c, i)] = float(kButton0 + i);
      if (!s.collected[i]) state[diamond_row(c, i) * w + diamond_col(c, i)] = float(kDiamond0 + i);
    }
    for (int32_t i = 0; i < kNumAgents; ++i) state[s.row[i] * w + s.col[i]] = float(kAgent0 + i);
    for (int32_t i = 0; i < kNumAgents; ++i) {
      float* o = obs + i * kObsDim;
      for (int32_t dr = -1; dr <= 1; ++dr)
        for (int32_t dc = -1; dc <= 1; ++dc) *o++ = state[(s.row[i] + dr) * w + s.col[i] + dc];
      *o++ = static_cast<float>(s.row[i]);
      *o++ = static_cast<float>(s.col[i]);
    }
    for (int32_t k = 0; k < kNumAgents * kNumActions; ++k) action_mask[k] = true;
  }

  HD static void episode_info(const Config&, const State& s, float* info) {
    const int32_t count = static_cast<int32_t>(s.collected[0]) + static_cast<int32_t>(s.collected[1]);
    info[0] = count == 2 ? 1.0f : 0.0f;
    info[1] = static_cast<float>(count);
  }
};

}  // namespace hmasd
