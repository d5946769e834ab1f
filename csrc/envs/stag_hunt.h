// stag_hunt: the symmetric Markov stag hunt for N self-play agents (docs/envs.md), one env copy per call.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/bits.h"
#include "core/env_spec.h"
#include "core/hd.h"
#include "core/options.h"
#include "core/philox.h"
#include "core/state_check.h"

namespace hmasd {

struct StagHuntConfig {
  int32_t grid_size = 8;
  int32_t num_agents = 4;
  int32_t num_hares = 4;
  int32_t max_steps = 35;
  float stag_move_prob = 0.5f;
  int32_t stag_min_hunters = 2;
  float stag_reward = 10.0f;
  float hare_reward = 1.0f;
  float lone_stag_penalty = 0.0f;
  int32_t reward_mode = 0;  // a code of StagHunt::kRewardModes
  bool agent_id_in_obs = false;
  int32_t tie_break = 0;  // a code of StagHunt::kTieBreaks
};

struct StagHunt {
  static constexpr int32_t kMaxAgents = 16;
  static constexpr int32_t kMaxHares = 16;
  static constexpr int32_t kNumActions = 5;
  using Action = int32_t;  // one discrete action per agent
  static constexpr int32_t kActionWidth = 1;
  static constexpr uint32_t kPurposeReset = 1, kPurposeStagMove = 2, kPurposeHareTie = 3, kPurposeRespawn = 4;
  static constexpr int32_t kOffGrid = -1;

  struct State {
    int32_t agent_row[kMaxAgents], agent_col[kMaxAgents];
    int32_t prey_row[1 + kMaxHares], prey_col[1 + kMaxHares];  // prey 0 is the stag, 1 + h is hare h
    int32_t stags[kMaxAgents], hares[kMaxAgents];
    int32_t t;
  };
  using Config = StagHuntConfig;
  static constexpr const char* kName = "stag_hunt";

  static constexpr const char* kRewardModes[] = {"individual", "team"};
  // "index" is a planted bias (the lowest agent index wins hare ties) for the symmetry audit to find.
  static constexpr const char* kTieBreaks[] = {"random", "index"};

  // A reward's magnitude: with team rewards a step sums every agent's captures, and returns sum over episodes, so
  // a bound keeps both finite (and meaningful) in float32.
  static constexpr double kMaxReward = 1e6;

  // Every option, once (docs/envs.md). The defaults repeat StagHuntConfig's initialisers; test_env_options.py holds
  // the two equal.
  static const std::vector<OptionSpec<Config>>& options() {
    static const std::vector<OptionSpec<Config>> table = {
        int_option<Config, &Config::grid_size>("grid_size", 8, 2, 64, "side of the square grid"),
        int_option<Config, &Config::num_agents>("num_agents", 4, 1, kMaxAgents, "hunters"),
        int_option<Config, &Config::num_hares>("num_hares", 4, 0, kMaxHares, "hares on the grid at all times"),
        int_option<Config, &Config::max_steps>("max_steps", 35, 1, INT32_MAX, "episode length limit"),
        float_option<Config, &Config::stag_move_prob>("stag_move_prob", 0.5f, 0.0, 1.0, false,
                                                      "chance the stag moves each step"),
        int_option<Config, &Config::stag_min_hunters>("stag_min_hunters", 2, 1, INT32_MAX,
                                                      "agents needed on the stag's cell to catch it"),
        float_option<Config, &Config::stag_reward>("stag_reward", 10.0f, -kMaxReward, kMaxReward, false,
                                                   "reward of a caught stag"),
        float_option<Config, &Config::hare_reward>("hare_reward", 1.0f, -kMaxReward, kMaxReward, false,
                                                   "reward of a caught hare"),
        float_option<Config, &Config::lone_stag_penalty>("lone_stag_penalty", 0.0f, -kMaxReward, kMaxReward, false,
                                                         "paid (negated) by each agent on the stag's cell when too few hunt it"),
        choice_option<Config, &Config::reward_mode>("reward_mode", kRewardModes, 0,
                                                    "team: every agent gets the sum of the individual rewards"),
        bool_option<Config, &Config::agent_id_in_obs>("agent_id_in_obs", false,
                                                      "append the one-hot agent index to each observation"),
        choice_option<Config, &Config::tie_break>("tie_break", kTieBreaks, 0,
                                                  "which of the agents on a hare's cell catches it"),
    };
    return table;
  }

  // A state read from a snapshot: agents on the grid, prey on the grid or off it (caught), counts and clock within
  // an episode.
  static void check_state(const Config& c, const State& s, StateCheck& check) {
    const int32_t last = c.grid_size - 1;
    for (int32_t i = 0; i < c.num_agents; ++i) {
      check.in_range("agent_row", s.agent_row[i], 0, last);
      check.in_range("agent_col", s.agent_col[i], 0, last);
      check.in_range("stags", s.stags[i], 0, c.max_steps);
      check.in_range("hares", s.hares[i], 0, c.max_steps);
    }
    for (int32_t j = 0; j < num_prey(c); ++j) {
      check.in_range("prey_row", s.prey_row[j], kOffGrid, last);
      check.in_range("prey_col", s.prey_col[j], kOffGrid, last);
      if ((s.prey_row[j] == kOffGrid) != (s.prey_col[j] == kOffGrid)) check.in_range("prey_row", s.prey_row[j], 0, -1);
    }
    check.in_range("t", s.t, 0, c.max_steps);
  }

  static void validate(const Config& c) {
    check_option_ranges(kName, options(), c);
    if (c.grid_size * c.grid_size < c.num_agents + 1 + c.num_hares)
      throw std::invalid_argument("stag_hunt: grid_size^2 = " + std::to_string(c.grid_size * c.grid_size) +
                                  " cells cannot hold num_agents + 1 stag + num_hares = " +
                                  std::to_string(c.num_agents + 1 + c.num_hares) + " distinct positions");
  }

  HD static int32_t obs_dim(const Config& c) {
    return 2 + 2 * (c.num_agents - 1) + 2 + 2 * c.num_hares + 1 + (c.agent_id_in_obs ? c.num_agents : 0);
  }
  static EnvDims dims(const Config& c) {
    return {c.num_agents, obs_dim(c), 2 * c.num_agents + 2 + 2 * c.num_hares + 1, kNumActions};
  }
  static std::vector<InfoField> info_fields(const Config&) { return {{"stags", true}, {"hares", true}}; }

  static void obs_bounds(const Config& c, float* low, float* high) {
    const int32_t dim = obs_dim(c);
    const int32_t relative_end = 2 + 2 * (c.num_agents - 1) + 2 + 2 * c.num_hares;
    for (int32_t k = 0; k < dim; ++k) {
      low[k] = (k >= 2 && k < relative_end) ? -1.0f : 0.0f;
      high[k] = 1.0f;
    }
  }
  static void state_bounds(const Config& c, float* low, float* high) {
    for (int32_t k = 0; k < dims(c).state_dim; ++k) {
      low[k] = 0.0f;
      high[k] = 1.0f;
    }
  }

  HD static int32_t num_prey(const Config& c) { return 1 + c.num_hares; }

  // Places prey j on the k-th free cell (row-major; free = no agent, no prey), k uniform over the free cells.
  // Occupancy is a bitmask over the S*S cells, so counting and selecting cost a few popcounts, not a scan.
  HD static void place_prey(const Config& c, State& s, int32_t j, uint32_t word) {
    const int32_t cells = c.grid_size * c.grid_size;
    const int32_t words = (cells + 63) / 64;
    uint64_t taken[64];
    for (int32_t w = 0; w < words; ++w) taken[w] = 0;
    auto mark = [&](int32_t row, int32_t col) {
      if (row < 0) return;
      const int32_t cell = row * c.grid_size + col;
      taken[cell >> 6] |= uint64_t(1) << (cell & 63);
    };
    for (int32_t i = 0; i < c.num_agents; ++i) mark(s.agent_row[i], s.agent_col[i]);
    for (int32_t p = 0; p < num_prey(c); ++p) mark(s.prey_row[p], s.prey_col[p]);
    int32_t free_cells = cells;
    for (int32_t w = 0; w < words; ++w) free_cells -= popcount64(taken[w]);
    int32_t k = uniform_int(word, free_cells);
    for (int32_t w = 0; w < words; ++w) {
      const int32_t bits = w == words - 1 && (cells & 63) ? (cells & 63) : 64;
      const uint64_t valid = bits == 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
      const uint64_t free_here = ~taken[w] & valid;
      const int32_t count = popcount64(free_here);
      if (k < count) {
        const int32_t cell = w * 64 + select_bit64(free_here, k);
        s.prey_row[j] = cell / c.grid_size;
        s.prey_col[j] = cell % c.grid_size;
        return;
      }
      k -= count;
    }
  }

  HD static void reset(const Config& c, State& s, const EnvRng& rng) {
    const int32_t n = c.num_agents;
    for (int32_t i = 0; i < n; ++i) {
      const int32_t cell = uniform_int(rng.word(0, kPurposeReset, i), c.grid_size * c.grid_size);
      s.agent_row[i] = cell / c.grid_size;
      s.agent_col[i] = cell % c.grid_size;
      s.stags[i] = s.hares[i] = 0;
    }
    for (int32_t j = 0; j < num_prey(c); ++j) s.prey_row[j] = s.prey_col[j] = kOffGrid;
    for (int32_t j = 0; j < num_prey(c); ++j) place_prey(c, s, j, rng.word(0, kPurposeReset, n + j));
    s.t = 0;
  }

  HD static bool stag_may_enter(const Config& c, const State& s, int32_t row, int32_t col) {
    if (row < 0 || col < 0 || row >= c.grid_size || col >= c.grid_size) return false;
    for (int32_t i = 0; i < c.num_agents; ++i)
      if (s.agent_row[i] == row && s.agent_col[i] == col) return false;
    for (int32_t j = 1; j < num_prey(c); ++j)
      if (s.prey_row[j] == row && s.prey_col[j] == col) return false;
    return true;
  }

  HD static void move_stag(const Config& c, State& s, const EnvRng& rng) {
    const Philox4x32 draws = rng.quad(s.t, kPurposeStagMove, 0);  // words 0 (move?) and 1 (where)
    if (!bernoulli(draws.v[0], c.stag_move_prob)) return;
    const int32_t kDrow[4] = {-1, 1, 0, 0};
    const int32_t kDcol[4] = {0, 0, -1, 1};
    int32_t candidates[4];
    int32_t count = 0;
    for (int32_t d = 0; d < 4; ++d)
      if (stag_may_enter(c, s, s.prey_row[0] + kDrow[d], s.prey_col[0] + kDcol[d])) candidates[count++] = d;
    if (count == 0) return;
    const int32_t d = candidates[uniform_int(draws.v[1], count)];
    s.prey_row[0] += kDrow[d];
    s.prey_col[0] += kDcol[d];
  }

  HD static StepStatus step(const Config& c, State& s, const Action* actions, float* rewards, const EnvRng& rng) {
    const int32_t n = c.num_agents;
    const int32_t kDrow[5] = {-1, 1, 0, 0, 0};
    const int32_t kDcol[5] = {0, 0, -1, 1, 0};
    for (int32_t i = 0; i < n; ++i) {
      const int32_t row = s.agent_row[i] + kDrow[actions[i]];
      const int32_t col = s.agent_col[i] + kDcol[actions[i]];
      if (row >= 0 && col >= 0 && row < c.grid_size && col < c.grid_size) {
        s.agent_row[i] = row;
        s.agent_col[i] = col;
      }
      rewards[i] = 0.0f;
    }
    move_stag(c, s, rng);

    bool caught[1 + kMaxHares];
    int32_t hunters = 0;
    for (int32_t i = 0; i < n; ++i) hunters += s.agent_row[i] == s.prey_row[0] && s.agent_col[i] == s.prey_col[0];
    caught[0] = hunters >= c.stag_min_hunters;
    for (int32_t i = 0; i < n; ++i) {
      if (s.agent_row[i] != s.prey_row[0] || s.agent_col[i] != s.prey_col[0]) continue;
      if (caught[0]) {
        rewards[i] += c.stag_reward;
        s.stags[i] += 1;
      } else {
        rewards[i] -= c.lone_stag_penalty;
      }
    }
    for (int32_t h = 0; h < c.num_hares; ++h) {
      const int32_t j = 1 + h;
      int32_t on_hare[kMaxAgents];
      int32_t count = 0;
      for (int32_t i = 0; i < n; ++i)
        if (s.agent_row[i] == s.prey_row[j] && s.agent_col[i] == s.prey_col[j]) on_hare[count++] = i;
      caught[j] = count > 0;
      if (!caught[j]) continue;
      const int32_t pick = c.tie_break == 0 ? uniform_int(rng.word(s.t, kPurposeHareTie, h), count) : 0;
      rewards[on_hare[pick]] += c.hare_reward;
      s.hares[on_hare[pick]] += 1;
    }

    for (int32_t j = 0; j < num_prey(c); ++j)
      if (caught[j]) s.prey_row[j] = s.prey_col[j] = kOffGrid;
    for (int32_t j = 0; j < num_prey(c); ++j)
      if (caught[j]) place_prey(c, s, j, rng.word(s.t, kPurposeRespawn, j));

    if (c.reward_mode == 1) {
      float total = 0.0f;
      for (int32_t i = 0; i < n; ++i) total += rewards[i];
      for (int32_t i = 0; i < n; ++i) rewards[i] = total;
    }
    s.t += 1;
    return {false, s.t >= c.max_steps};
  }

  HD static void observe(const Config& c, const State& s, float* obs, float* state, bool* action_mask) {
    const int32_t n = c.num_agents;
    // Every coordinate is an integer offset in [-(S-1), S-1] divided by S-1: divide each offset once. The same
    // division, so the values are bit-identical to dividing in place.
    const int32_t span = c.grid_size - 1;
    float scaled[2 * 64 - 1];
    for (int32_t x = -span; x <= span; ++x) scaled[x + span] = static_cast<float>(x) / static_cast<float>(span);
    const float* by_offset = scaled + span;
    const float time = static_cast<float>(s.t) / static_cast<float>(c.max_steps);
    const int32_t dim = obs_dim(c);
    for (int32_t i = 0; i < n; ++i) {
      float* o = obs + i * dim;
      const int32_t row = s.agent_row[i], col = s.agent_col[i];
      *o++ = by_offset[row];
      *o++ = by_offset[col];
      for (int32_t k = 1; k < n; ++k) {
        const int32_t other = (i + k) % n;
        *o++ = by_offset[s.agent_row[other] - row];
        *o++ = by_offset[s.agent_col[other] - col];
      }
      for (int32_t j = 0; j < num_prey(c); ++j) {
        *o++ = by_offset[s.prey_row[j] - row];
        *o++ = by_offset[s.prey_col[j] - col];
      }
      *o++ = time;
      if (c.agent_id_in_obs)
        for (int32_t k = 0; k < n; ++k) *o++ = k == i ? 1.0f : 0.0f;
      bool* mask = action_mask + i * kNumActions;
      mask[0] = row > 0;
      mask[1] = row < c.grid_size - 1;
      mask[2] = col > 0;
      mask[3] = col < c.grid_size - 1;
      mask[4] = true;
    }
    for (int32_t i = 0; i < n; ++i) {
      *state++ = by_offset[s.agent_row[i]];
      *state++ = by_offset[s.agent_col[i]];
    }
    for (int32_t j = 0; j < num_prey(c); ++j) {
      *state++ = by_offset[s.prey_row[j]];
      *state++ = by_offset[s.prey_col[j]];
    }
    *state = time;
  }

  HD static void episode_info(const Config& c, const State& s, float* info) {
    for (int32_t i = 0; i < c.num_agents; ++i) {
      info[i] = static_cast<float>(s.stags[i]);
      info[c.num_agents + i] = static_cast<float>(s.hares[i]);
    }
  }
};

}  // namespace hmasd
