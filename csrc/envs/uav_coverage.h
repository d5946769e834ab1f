// uav_coverage: UAV base stations serving ground users, with relayed backhaul to ground base stations
// (docs/envs.md), one env copy per call. Continuous and discrete actions are two instantiations of one template.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/env_spec.h"
#include "core/fast_math.h"
#include "core/hd.h"
#include "core/options.h"
#include "core/philox.h"
#include "core/state_check.h"

namespace hmasd {

struct UavCoverageConfig {
  int32_t scenario = 1;  // the choice options hold a code of their name list in UavCoverageT::options()
  int32_t num_uavs = 5;
  int32_t num_users = 50;
  double area_size = 1000.0;
  double min_height = 50.0;
  double max_height = 150.0;
  double max_speed = 30.0;
  double dt = 1.0;
  int32_t max_steps = 500;
  int32_t user_distribution = 0;
  int32_t action_type = 0;
  int32_t bandwidth_sharing = 0;
  bool reward_split = false;
  int32_t channel_model = 3;
  bool shadowing = false;
  int32_t al_hourani_env = 0;
  double carrier_ghz = 2.4;
  double bandwidth_mhz = 20.0;
  double uav_tx_power_dbm = 20.0;
  double noise_dbm = -104.0;
  double min_sinr_db = 0.0;
  int32_t max_connections = 10;
  int32_t n_ground_bs = 1;
  double gbs_height = 30.0;
  double gbs_tx_power_dbm = 20.0;
  double backhaul_min_snr_db = 30.0;
  int32_t max_hops = 3;
  int32_t user_grid = 0;  // 0: users as (x, y) lists; G > 0: as fractions of users per cell of a G x G grid
  bool uav_load = false;  // obs and state also carry every UAV's load and where its served users are
  double load_offset_scale = 0.0;  // metres of offset that uav_load reports as +-1 (0: area_size)
};

// Per-step metrics, in the order of UavCoverageT::kMetricNames.
enum UavMetric : int32_t {
  kSystemThroughput,
  kAvgThroughputPerUser,
  kConnectedUsers,
  kCoverageRatio,
  kConnectivityRatio,
  kAvgHops,
  kRewardCoverage,
  kRewardQuality,
  kRewardConnectivity,
  kRewardThroughput,
  kRewardHeight,
  kRewardHops,
  kNumUavMetrics
};

// Radio constants that depend only on the config, computed once per call rather than once per link.
struct UavRadio {
  double noise_mw, min_sinr_linear, tx_mw, bandwidth_hz, fspl_const_db, log10_f_ghz;
  double free_space_gain;  // tx_mw * (c / (4 pi f))^2: free-space received power is this / d^2
};

template <bool kContinuous>
struct UavCoverageT {
  static constexpr int32_t kMaxUavs = 16;
  static constexpr int32_t kMaxUsers = 512;
  static constexpr int32_t kMaxGbs = 9;
  static constexpr int32_t kMaxUserGrid = 32;
  static constexpr int32_t kNumDiscreteActions = 7;
  static constexpr uint32_t kPurposeUavs = 1, kPurposeUsers = 2, kPurposeTie = 3, kPurposeShadowing = 4;
  static constexpr int32_t kRelay = 2, kBaseStation = 1, kUnassigned = 0;

  using Action = typename std::conditional<kContinuous, float, int32_t>::type;
  static constexpr int32_t kActionWidth = kContinuous ? 3 : 1;
  using Config = UavCoverageConfig;
  static constexpr const char* kName = "uav_coverage";

  struct State {
    float uav[kMaxUavs][3];
    float user[kMaxUsers][2];
    int32_t t;
    // The radio evaluated last (at reset or at the last step).
    int32_t serving[kMaxUsers];
    int32_t served_count[kMaxUavs], hops[kMaxUavs], next_hop[kMaxUavs], role[kMaxUavs];
    int32_t unserved_in_range[kMaxUavs];  // unserved users whose link to the UAV clears min_sinr_db
    uint32_t gbs_links[kMaxUavs];  // bit g: a link to GBS g
    uint32_t uav_links[kMaxUavs];  // bit v: a link to UAV v
    double metric[kNumUavMetrics];
    // Sums over the episode's steps, for the episode info.
    double metric_sum[kNumUavMetrics];
    double served_sum[kMaxUavs];
    int32_t relay_steps[kMaxUavs], base_station_steps[kMaxUavs];
  };

  // ---- spec ---------------------------------------------------------------------------------------
  static constexpr const char* kScenarios[] = {"base_station", "cooperative_network"};
  static constexpr const char* kUserDistributions[] = {"uniform", "cluster", "hotspot"};
  static constexpr const char* kActionTypes[] = {"continuous", "discrete"};
  static constexpr const char* kBandwidthSharings[] = {"full", "equal"};
  static constexpr const char* kChannelModels[] = {"free_space", "urban", "suburban", "3gpp-36777", "al-hourani"};
  static constexpr const char* kAlHouraniEnvs[] = {"urban", "suburban"};

  // Physical ranges: positions are float32 metres and every radio quantity must stay finite in float32 (a power
  // of 150 dBm over a noise of -150 dBm is 1e30), so no option can push an observation or reward to inf.
  static constexpr double kMaxAltitude = 1e4;   // m
  static constexpr double kMaxDecibels = 150.0;  // powers, dBm
  static constexpr double kMaxThresholdDb = 1000.0;  // thresholds are only compared with: -200 dB serves everyone

  // Every option, once (docs/envs.md). The defaults repeat UavCoverageConfig's initialisers; test_env_options.py
  // holds the two equal. Every number has a physical range (above); sizes and rates must be > 0.
  static const std::vector<OptionSpec<Config>>& options() {
    static const std::vector<OptionSpec<Config>> table = {
        choice_option<Config, &Config::scenario>("scenario", kScenarios, 1,
                                                 "cooperative_network adds ground base stations and relayed backhaul"),
        int_option<Config, &Config::num_uavs>("num_uavs", 5, 1, kMaxUavs, "UAVs (agents)"),
        int_option<Config, &Config::num_users>("num_users", 50, 1, kMaxUsers, "ground users"),
        double_option<Config, &Config::area_size>("area_size", 1000.0, 1.0, 1e6, false, "side of the square area, m"),
        double_option<Config, &Config::min_height>("min_height", 50.0, 0.0, kMaxAltitude, false,
                                                   "lowest UAV altitude, m (below max_height)"),
        double_option<Config, &Config::max_height>("max_height", 150.0, 0.0, kMaxAltitude, false,
                                                   "highest UAV altitude, m"),
        double_option<Config, &Config::max_speed>("max_speed", 30.0, 0.0, 1e4, false, "UAV speed limit, m/s"),
        double_option<Config, &Config::dt>("dt", 1.0, 0.0, 3600.0, true, "seconds per step"),
        int_option<Config, &Config::max_steps>("max_steps", 500, 1, INT32_MAX, "episode length limit"),
        choice_option<Config, &Config::user_distribution>("user_distribution", kUserDistributions, 0,
                                                          "how users are placed at reset"),
        choice_option<Config, &Config::action_type>("action_type", kActionTypes, 0,
                                                    "continuous 3-D velocity or one of 7 discrete moves"),
        choice_option<Config, &Config::bandwidth_sharing>("bandwidth_sharing", kBandwidthSharings, 0,
                                                          "equal splits a UAV's bandwidth among its users"),
        bool_option<Config, &Config::reward_split>("reward_split", false,
                                                   "each UAV gets the team reward divided by num_uavs"),
        choice_option<Config, &Config::channel_model>("channel_model", kChannelModels, 3, "air-to-ground path loss"),
        bool_option<Config, &Config::shadowing>("shadowing", false, "log-normal shadowing (3gpp-36777 only)"),
        choice_option<Config, &Config::al_hourani_env>("al_hourani_env", kAlHouraniEnvs, 0,
                                                       "environment parameters of the al-hourani model"),
        double_option<Config, &Config::carrier_ghz>("carrier_ghz", 2.4, 0.0, 1000.0, true, "carrier frequency, GHz"),
        double_option<Config, &Config::bandwidth_mhz>("bandwidth_mhz", 20.0, 0.0, 1e5, true,
                                                      "channel bandwidth, MHz"),
        double_option<Config, &Config::uav_tx_power_dbm>("uav_tx_power_dbm", 20.0, -kMaxDecibels, kMaxDecibels, false,
                                                         "UAV transmit power, dBm"),
        double_option<Config, &Config::noise_dbm>("noise_dbm", -104.0, -kMaxDecibels, kMaxDecibels, false, "noise power, dBm"),
        double_option<Config, &Config::min_sinr_db>("min_sinr_db", 0.0, -kMaxThresholdDb, kMaxThresholdDb, false,
                                                    "SINR a user needs to be served, dB"),
        int_option<Config, &Config::max_connections>("max_connections", 10, 1, 1 << 30, "users one UAV can serve"),
        int_option<Config, &Config::n_ground_bs>("n_ground_bs", 1, 1, kMaxGbs,
                                                 "ground base stations (cooperative_network)"),
        double_option<Config, &Config::gbs_height>("gbs_height", 30.0, 0.0, kMaxAltitude, false,
                                                   "ground base station antenna height, m"),
        double_option<Config, &Config::gbs_tx_power_dbm>("gbs_tx_power_dbm", 20.0, -kMaxDecibels, kMaxDecibels, false,
                                                         "ground base station transmit power, dBm"),
        double_option<Config, &Config::backhaul_min_snr_db>("backhaul_min_snr_db", 30.0, -kMaxThresholdDb,
                                                            kMaxThresholdDb, false,
                                                            "SNR of a usable backhaul link, dB"),
        int_option<Config, &Config::max_hops>("max_hops", 3, 1, kMaxUavs, "longest relay route, in hops"),
        int_option<Config, &Config::user_grid>("user_grid", 0, 0, kMaxUserGrid,
                                               "0: users as (x, y) in obs and state; G: per-cell user fractions "
                                               "of a G x G grid (order-free)"),
        bool_option<Config, &Config::uav_load>("uav_load", false,
                                               "obs and state also carry each UAV's served users, unserved users "
                                               "in range and the mean offset of its served users"),
        double_option<Config, &Config::load_offset_scale>("load_offset_scale", 0.0, 0.0, 1e6, false,
                                                          "metres of offset that uav_load reports as +-1 "
                                                          "(0: area_size)"),
    };
    return table;
  }

  // A state read from a snapshot: finite positions (set_positions places UAVs and users anywhere finite, for
  // hand-built scenarios, so the bound is only one that float arithmetic survives), and every index the radio and
  // the routes read within its array.
  static void check_state(const Config& c, const State& s, StateCheck& check) {
    const int32_t nu = c.num_uavs, ng = num_gbs(c);
    constexpr double kFar = 1e7;
    for (int32_t u = 0; u < nu; ++u) {
      for (int32_t k = 0; k < 3; ++k) check.finite_in("uav position", s.uav[u][k], -kFar, kFar);
      check.in_range("served_count", s.served_count[u], 0, c.num_users);
      check.in_range("unserved_in_range", s.unserved_in_range[u], 0, c.num_users);
      check.in_range("hops", s.hops[u], 0, nu);
      check.in_range("next_hop", s.next_hop[u], -1, nu + ng - 1);
      check.in_range("role", s.role[u], kUnassigned, kRelay);
      check.in_range("gbs_links", s.gbs_links[u], 0, (int64_t(1) << ng) - 1);
      check.in_range("uav_links", s.uav_links[u], 0, (int64_t(1) << nu) - 1);
      check.in_range("relay_steps", s.relay_steps[u], 0, c.max_steps);
      check.in_range("base_station_steps", s.base_station_steps[u], 0, c.max_steps);
      check.finite_in("served_sum", s.served_sum[u], 0.0, double(c.num_users) * c.max_steps);
    }
    for (int32_t j = 0; j < c.num_users; ++j) {
      for (int32_t k = 0; k < 2; ++k) check.finite_in("user position", s.user[j][k], -kFar, kFar);
      check.in_range("serving", s.serving[j], -1, nu - 1);
    }
    for (int32_t k = 0; k < kNumUavMetrics; ++k) {
      check.finite_in("metric", s.metric[k], -1e300, 1e300);
      check.finite_in("metric_sum", s.metric_sum[k], -1e300, 1e300);
    }
    check.in_range("t", s.t, 0, c.max_steps);
  }

  static void validate(const Config& c) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("uav_coverage: " + what); };
    check_option_ranges(kName, options(), c);
    if (!(c.min_height < c.max_height))
      fail("height_range must satisfy min_height < max_height, got (" + std::to_string(c.min_height) + ", " +
           std::to_string(c.max_height) + ")");
    if ((c.action_type == 0) != kContinuous) fail("action_type does not match the native env class");
    if (c.shadowing && c.channel_model != 3) fail("shadowing is defined for channel_model='3gpp-36777' only");
  }

  HD static bool cooperative(const Config& c) { return c.scenario == 1; }
  HD static int32_t num_gbs(const Config& c) { return cooperative(c) ? c.n_ground_bs : 0; }
  // The users' block of obs and state: their (x, y), or one user fraction per grid cell; the state's served block:
  // one flag per user, or one served-user fraction per cell.
  HD static int32_t user_block(const Config& c) {
    return c.user_grid > 0 ? c.user_grid * c.user_grid : 2 * c.num_users;
  }
  HD static int32_t served_block(const Config& c) {
    return c.user_grid > 0 ? c.user_grid * c.user_grid : c.num_users;
  }
  // With uav_load, kLoadWidth numbers per UAV at the end of obs and state.
  static constexpr int32_t kLoadWidth = 4;
  HD static int32_t load_block(const Config& c) { return c.uav_load ? kLoadWidth * c.num_uavs : 0; }
  HD static int32_t obs_dim(const Config& c) {
    return 3 + user_block(c) + 3 * (c.num_uavs - 1) + 1 + (cooperative(c) ? 3 + c.n_ground_bs + 1 : 0) +
           load_block(c);
  }
  HD static int32_t state_dim(const Config& c) {
    return 3 * c.num_uavs + user_block(c) + 1 + served_block(c) + load_block(c);
  }
  static EnvDims dims(const Config& c) {
    return {c.num_uavs, obs_dim(c), state_dim(c), kContinuous ? 0 : kNumDiscreteActions};
  }
  static constexpr const char* kMetricNames[kNumUavMetrics] = {
      "system_throughput_mbps", "avg_throughput_per_user_mbps", "connected_users", "coverage_ratio",
      "connectivity_ratio", "avg_hops", "reward_coverage", "reward_quality", "reward_connectivity",
      "reward_throughput", "reward_height", "reward_hops"};
  static std::vector<InfoField> info_fields(const Config&) {
    std::vector<InfoField> fields;
    for (const char* name : kMetricNames) fields.push_back({name, false});
    fields.push_back({"served_users", true});
    fields.push_back({"relay_fraction", true});
    fields.push_back({"base_station_fraction", true});
    return fields;
  }
  static void obs_bounds(const Config& c, float* low, float* high) {
    for (int32_t k = 0; k < obs_dim(c); ++k) low[k] = 0.0f, high[k] = 1.0f;
  }
  static void state_bounds(const Config& c, float* low, float* high) {
    for (int32_t k = 0; k < state_dim(c); ++k) low[k] = 0.0f, high[k] = 1.0f;
  }

  // ---- geometry -------------------------------------------------------------------------------
  HD static double unit(uint32_t w) { return static_cast<double>(w >> 8) * 0x1p-24; }
  HD static double normal(uint32_t w1, uint32_t w2) {
    const double two_pi = 6.283185307179586;
    return sqrt(-2.0 * log(unit(w1) + 0x1p-24)) * cos(two_pi * unit(w2));
  }
  HD static double clip(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }
  HD static float clipf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

  HD static void gbs_position(const Config& c, int32_t g, double* pos) {
    const int32_t n = c.n_ground_bs;
    double fx, fy;
    if (n == 1) {
      fx = fy = 0.5;
    } else if (n == 2) {
      fx = fy = g == 0 ? 0.25 : 0.75;
    } else if (n == 3) {
      const double xs[3] = {0.5, 0.2, 0.8}, ys[3] = {0.2, 0.8, 0.8};
      fx = xs[g], fy = ys[g];
    } else if (n == 4) {
      const double xs[4] = {0.2, 0.8, 0.2, 0.8}, ys[4] = {0.2, 0.2, 0.8, 0.8};
      fx = xs[g], fy = ys[g];
    } else {
      const double grid[3] = {0.2, 0.5, 0.8};
      fx = grid[g % 3], fy = grid[g / 3];
    }
    pos[0] = c.area_size * fx;
    pos[1] = c.area_size * fy;
    pos[2] = c.gbs_height;
  }

  HD static void place_users(const Config& c, State& s, const EnvRng& rng) {
    const double a = c.area_size;
    const int32_t n = c.num_users;
    auto w = [&](uint32_t index) { return rng.word(0, kPurposeUsers, index); };
    if (c.user_distribution == 0) {
      for (int32_t j = 0; j < n; ++j) {
        s.user[j][0] = static_cast<float>(a * unit(w(2 * j)));
        s.user[j][1] = static_cast<float>(a * unit(w(2 * j + 1)));
      }
    } else if (c.user_distribution == 1) {
      const int32_t centres = n / 10 + 1 < 5 ? n / 10 + 1 : 5;
      for (int32_t j = 0; j < n; ++j) {
        const uint32_t q = 2 * centres + 5 * j;
        const int32_t centre = uniform_int(w(q), centres);
        const double cx = a * unit(w(2 * centre)), cy = a * unit(w(2 * centre + 1));
        s.user[j][0] = static_cast<float>(clip(cx + (a / 10.0) * normal(w(q + 1), w(q + 2)), 0.0, a));
        s.user[j][1] = static_cast<float>(clip(cy + (a / 10.0) * normal(w(q + 3), w(q + 4)), 0.0, a));
      }
    } else {
      const double two_pi = 6.283185307179586;
      for (int32_t j = 0; j < n; ++j) {
        const uint32_t q = 3 * j;
        const double u1 = unit(w(q + 1)), u2 = unit(w(q + 2));
        if (bernoulli(w(q), 0.7f)) {
          const double r = (a / 3.0) * u1, phi = two_pi * u2;
          s.user[j][0] = static_cast<float>(a / 2.0 + r * cos(phi));
          s.user[j][1] = static_cast<float>(a / 2.0 + r * sin(phi));
        } else {
          s.user[j][0] = static_cast<float>(a * u1);
          s.user[j][1] = static_cast<float>(a * u2);
        }
      }
    }
  }

  HD static void reset(const Config& c, State& s, const EnvRng& rng) {
    const float area = static_cast<float>(c.area_size), low = static_cast<float>(c.min_height);
    const float span = static_cast<float>(c.max_height - c.min_height);
    for (int32_t u = 0; u < c.num_uavs; ++u) {
      s.uav[u][0] = area * uniform_float(rng.word(0, kPurposeUavs, 3 * u));
      s.uav[u][1] = area * uniform_float(rng.word(0, kPurposeUavs, 3 * u + 1));
      s.uav[u][2] = low + span * uniform_float(rng.word(0, kPurposeUavs, 3 * u + 2));
    }
    place_users(c, s, rng);
    s.t = 0;
    evaluate_radio(c, s, rng, nullptr);
    for (int32_t k = 0; k < kNumUavMetrics; ++k) s.metric_sum[k] = 0.0;
    for (int32_t u = 0; u < c.num_uavs; ++u) {
      s.served_sum[u] = 0.0;
      s.relay_steps[u] = s.base_station_steps[u] = 0;
    }
  }

  // ---- radio ----------------------------------------------------------------------------------
  HD static UavRadio radio_constants(const Config& c) {
    const double pi = 3.141592653589793, speed_of_light = 299792458.0;
    const double f_hz = c.carrier_ghz * 1e9;
    UavRadio r;
    // Inline exp and log rather than libm's pow and log10: this runs once per env step.
    const double to_exponent = 2.302585092994046 / 10.0;
    r.noise_mw = fast_exp(c.noise_dbm * to_exponent);
    r.min_sinr_linear = fast_exp(c.min_sinr_db * to_exponent);
    r.tx_mw = fast_exp(c.uav_tx_power_dbm * to_exponent);
    r.bandwidth_hz = c.bandwidth_mhz * 1e6;
    r.fspl_const_db = 20.0 * fast_log10(4.0 * pi * f_hz / speed_of_light);
    r.log10_f_ghz = fast_log10(c.carrier_ghz);
    const double wavelength_ratio = speed_of_light / (4.0 * pi * f_hz);
    r.free_space_gain = r.tx_mw * wavelength_ratio * wavelength_ratio;
    return r;
  }

  // 3gpp-36777 line-of-sight probability of a link at elevation angle theta (degrees).
  HD static double los_probability_3gpp(double theta) { return 1.0 / (1.0 + 5.0 * fast_exp(-0.6 * (theta - 5.0))); }

  // log10 of the 3-D distance (floored at 1 m) and the elevation angle in degrees of a link at height h and
  // horizontal offset (dx, dy), sharing one division.
  HD static void distance_and_elevation(double h, double dx, double dy, double& log10_d, double& theta) {
    const double r2 = dx * dx + dy * dy, d2 = r2 + h * h;
    double log_d2, angle;
    fast_log_atan2_positive(d2 < 1.0 ? 1.0 : d2, h, sqrt(r2), log_d2, angle);
    log10_d = 0.5 * (log_d2 * 0.43429448190325176);
    theta = angle * (180.0 / 3.141592653589793);
  }

  // Received power (mW) of every link into p[u * N + j]: per UAV one branch-free loop over the users for the
  // channel model in force, which the compiler vectorises; shadowing (an RNG draw per link) is applied after.
  HMASD_TARGET_CLONES HD static void received_power(const Config& c, const UavRadio& r, const State& s,
                                                     const EnvRng& rng, double* p) {
    const int32_t nu = c.num_uavs, n = c.num_users;
    // Users in whole blocks of kLanes (one AVX-512 vector, two AVX2 ones): no scalar remainder loop, whose few
    // users cost as much as a vector pass. The padding users sit at the origin and are never read.
    constexpr int32_t kLanes = 8;
    const int32_t padded = (n + kLanes - 1) / kLanes * kLanes;
    double ux[kMaxUsers], uy[kMaxUsers], row[kMaxUsers], los_p[kMaxUsers];  // los_p: 3gpp LoS probability, for shadowing
    for (int32_t j = 0; j < n; ++j) ux[j] = double(s.user[j][0]), uy[j] = double(s.user[j][1]);
    for (int32_t j = n; j < padded; ++j) ux[j] = uy[j] = 0.0;
    const double to_exponent = 2.302585092994046 / 10.0;  // 10^(x / 10) = e^(x ln10 / 10)
    const double tx = c.uav_tx_power_dbm, lg_f = 20.0 * r.log10_f_ghz;
    const bool urban = c.al_hourani_env == 0;
    const double a = urban ? 9.61 : 4.88, b = urban ? 0.16 : 0.43;
    const double eta_los = urban ? 1.0 : 0.1, eta_nlos = urban ? 20.0 : 21.0;
    for (int32_t u = 0; u < nu; ++u) {
      const double x = double(s.uav[u][0]), y = double(s.uav[u][1]), h = double(s.uav[u][2]), h2 = h * h;
      switch (c.channel_model) {
        case 0:  // 10^((P - FSPL) / 10) without a log and an exp
          for (int32_t block = 0; block < padded; block += kLanes)
            HMASD_SIMD
            for (int32_t j = block; j < block + kLanes; ++j) {
              const double dx = x - ux[j], dy = y - uy[j], d2 = dx * dx + dy * dy + h2;
              row[j] = r.free_space_gain / (d2 < 1.0 ? 1.0 : d2);
            }
          break;
        case 1:
        case 2: {
          const double base = c.channel_model == 1 ? 128.1 : 120.0, slope = c.channel_model == 1 ? 37.6 : 35.0;
          for (int32_t block = 0; block < padded; block += kLanes)
            HMASD_SIMD
            for (int32_t j = block; j < block + kLanes; ++j) {
              const double dx = x - ux[j], dy = y - uy[j], d2 = dx * dx + dy * dy + h2;
              const double log10_d = 0.5 * fast_log10(d2 < 1.0 ? 1.0 : d2);
              row[j] = fast_exp((tx - (base + slope * (log10_d - 3.0))) * to_exponent);
            }
          break;
        }
        case 3:
          for (int32_t block = 0; block < padded; block += kLanes)
            HMASD_SIMD
            for (int32_t j = block; j < block + kLanes; ++j) {
              double log10_d, theta;
              distance_and_elevation(h, x - ux[j], y - uy[j], log10_d, theta);
              const double los_probability = los_probability_3gpp(theta);
              const double los = 28.0 + 22.0 * log10_d + lg_f, nlos = 22.7 + 41.0 * log10_d + lg_f;
              row[j] = fast_exp((tx - (los_probability * los + (1.0 - los_probability) * nlos)) * to_exponent);
              los_p[j] = los_probability;
            }
          if (c.shadowing)
            for (int32_t j = 0; j < n; ++j) {
              const uint32_t k = static_cast<uint32_t>(u * n + j);
              const Philox4x32 q = rng.quad(s.t, kPurposeShadowing, k >> 1);  // words 2k, 2k+1 share one quad
              const uint32_t base = (2 * k) & 3u;
              const double sigma = 4.0 * los_p[j] + 8.0 * (1.0 - los_p[j]);
              row[j] *= fast_exp(-sigma * normal(q.v[base], q.v[base + 1]) * to_exponent);
            }
          break;
        default:  // al-hourani
          for (int32_t block = 0; block < padded; block += kLanes)
            HMASD_SIMD
            for (int32_t j = block; j < block + kLanes; ++j) {
              double log10_d, theta;
              distance_and_elevation(h, x - ux[j], y - uy[j], log10_d, theta);
              const double los_probability = 1.0 / (1.0 + a * fast_exp(-b * (theta - a)));
              const double path_loss = 20.0 * log10_d + r.fspl_const_db + los_probability * eta_los +
                                       (1.0 - los_probability) * eta_nlos;
              row[j] = fast_exp((tx - path_loss) * to_exponent);
            }
      }
      for (int32_t j = 0; j < n; ++j) p[u * n + j] = row[j];
    }
  }

  // SINR of every link into sinr[u * N + j] (full reuse: every other UAV interferes).
  HMASD_TARGET_CLONES HD static void link_sinr(const Config& c, const UavRadio& r, const State& s, const EnvRng& rng,
                                              double* sinr) {
    const int32_t nu = c.num_uavs, n = c.num_users;
    received_power(c, r, s, rng, sinr);
    double total[kMaxUsers];
    for (int32_t j = 0; j < n; ++j) total[j] = 0.0;
    for (int32_t u = 0; u < nu; ++u) {  // summed in UAV order, as the contract fixes
      const double* row = sinr + u * n;
      HMASD_SIMD
      for (int32_t j = 0; j < n; ++j) total[j] += row[j];
    }
    for (int32_t u = 0; u < nu; ++u) {
      double* row = sinr + u * n;
      HMASD_SIMD
      for (int32_t j = 0; j < n; ++j) row[j] = row[j] / (r.noise_mw + (total[j] - row[j]));
    }
  }

  // log2(1 + sinr) and the SINR in dB of every user's serving link (1 for unserved users, whose terms are unused).
  HMASD_TARGET_CLONES HD static void serving_link_logs(int32_t n, const double* link, double* spectral,
                                                      double* link_db) {
    HMASD_SIMD
    for (int32_t j = 0; j < n; ++j) {
      spectral[j] = fast_log2(1.0 + link[j]);
      link_db[j] = 10.0 * fast_log10(link[j]);
    }
  }

  // Pair order of the association: higher SINR first, equal SINR by the RNG key, then by the pair index.
  HD static bool before(const State& s, const EnvRng& rng, const double* sinr, int32_t a, int32_t b) {
    if (sinr[a] != sinr[b]) return sinr[a] > sinr[b];
    const uint32_t ka = rng.word(s.t, kPurposeTie, a), kb = rng.word(s.t, kPurposeTie, b);
    if (ka != kb) return ka < kb;
    return a < b;
  }

  // User j's best eligible UAV by the pair order, leaving out the UAVs of the bit mask `refused`; -1 when none.
  HD static int32_t best_uav(const Config& c, const UavRadio& r, const State& s, const EnvRng& rng,
                             const double* sinr, int32_t j, uint32_t refused) {
    const int32_t n = c.num_users;
    int32_t best = -1;
    for (int32_t u = 0; u < c.num_uavs; ++u) {
      const int32_t pair = u * n + j;
      if ((refused >> u & 1u) || !(sinr[pair] >= r.min_sinr_linear)) continue;
      if (best < 0 || before(s, rng, sinr, pair, best * n + j)) best = u;
    }
    return best;
  }

  // Every user's best eligible UAV (serving[j], -1 when none), one branch-free pass per UAV over the users.
  // Returns false when some user sees two eligible UAVs with equal SINR: the caller then breaks the ties by key.
  HMASD_TARGET_CLONES HD static bool first_choices(const Config& c, const UavRadio& r, const double* sinr,
                                                    int32_t* serving) {
    const int32_t nu = c.num_uavs, n = c.num_users;
    const double floor = r.min_sinr_linear;
    double best[kMaxUsers], best_uav[kMaxUsers], tie[kMaxUsers];
    for (int32_t j = 0; j < n; ++j) best[j] = -1.0, best_uav[j] = -1.0, tie[j] = 0.0;  // eligible SINRs are > 0
    for (int32_t u = 0; u < nu; ++u) {
      const double* row = sinr + u * n;
      const double uav = u;
      HMASD_SIMD
      for (int32_t j = 0; j < n; ++j) {
        const double v = row[j];
        const bool eligible = v >= floor;
        tie[j] = eligible && v == best[j] ? 1.0 : tie[j];
        const bool better = eligible && v > best[j];
        best[j] = better ? v : best[j];
        best_uav[j] = better ? uav : best_uav[j];
      }
    }
    bool ties = false;
    for (int32_t j = 0; j < n; ++j) {
      serving[j] = static_cast<int32_t>(best_uav[j]);
      ties |= tie[j] != 0.0;
    }
    return !ties;
  }

  // The users one UAV holds during deferred acceptance: at most max_connections, unordered, and the slot of the
  // worst of them once it is full (-1 while not known).
  struct HeldUsers {
    int32_t user[kMaxUsers];
    double sinr[kMaxUsers];
    int32_t worst;
  };

  // Slot k ranks below slot w at UAV u: lower SINR, equal SINR by the pair order.
  HD static bool ranks_below(const Config& c, const State& s, const EnvRng& rng, const double* sinr, int32_t u,
                             const HeldUsers& h, int32_t k, int32_t w) {
    const int32_t n = c.num_users;
    return h.sinr[k] < h.sinr[w] ||
           (h.sinr[k] == h.sinr[w] && before(s, rng, sinr, u * n + h.user[w], u * n + h.user[k]));
  }

  HD static void find_worst(const Config& c, const State& s, const EnvRng& rng, const double* sinr, int32_t u,
                            HeldUsers& h) {
    int32_t w = 0;
    for (int32_t k = 1; k < s.served_count[u]; ++k)
      if (ranks_below(c, s, rng, sinr, u, h, k, w)) w = k;
    h.worst = w;
  }

  // User j proposes to UAV u, which holds h; returns the user u turns away, or -1.
  HD static int32_t admit(const Config& c, State& s, const EnvRng& rng, const double* sinr, int32_t u, int32_t j,
                          HeldUsers& h) {
    const int32_t k = s.served_count[u];
    h.user[k] = j;
    h.sinr[k] = sinr[u * c.num_users + j];
    if (k < c.max_connections) {
      s.served_count[u] = k + 1;
      return -1;
    }
    if (h.worst < 0) find_worst(c, s, rng, sinr, u, h);
    if (ranks_below(c, s, rng, sinr, u, h, k, h.worst)) return j;  // the newcomer ranks last
    const int32_t out = h.user[h.worst];
    h.user[h.worst] = j;
    h.sinr[h.worst] = h.sinr[k];
    find_worst(c, s, rng, sinr, u, h);
    return out;
  }

  HD static void associate(const Config& c, const UavRadio& r, State& s, const EnvRng& rng, const double* sinr) {
    const int32_t nu = c.num_uavs, n = c.num_users;
    if (!first_choices(c, r, sinr, s.serving))  // equal SINRs somewhere: the full pair order, user by user
      for (int32_t j = 0; j < n; ++j) s.serving[j] = best_uav(c, r, s, rng, sinr, j, 0u);
    for (int32_t u = 0; u < nu; ++u) {  // one vectorisable count per UAV rather than a data-dependent histogram
      int32_t count = 0;
      for (int32_t j = 0; j < n; ++j) count += s.serving[j] == u;
      s.served_count[u] = count;
    }
    bool binding = false;
    for (int32_t u = 0; u < nu; ++u) binding |= s.served_count[u] > c.max_connections;
    if (!binding) return;
    // Some UAV is over-subscribed. Pairs ranked by one global order make the greedy pass over them equal to the
    // unique stable matching, which user-proposing deferred acceptance finds with a few hundred comparisons
    // instead of a sort of U * N pairs: every UAV holds its best proposers so far, and a user pushed out proposes
    // to its next UAV. serving[j] holds j's current proposal throughout.
    HeldUsers held[kMaxUavs];
    int32_t free_users[kMaxUsers];
    uint32_t refused[kMaxUsers];  // bit u: UAV u has turned user j away
    int32_t free_count = 0;
    for (int32_t u = 0; u < nu; ++u) s.served_count[u] = 0, held[u].worst = -1;
    for (int32_t j = 0; j < n; ++j) {
      refused[j] = 0;
      if (s.serving[j] < 0) continue;
      const int32_t out = admit(c, s, rng, sinr, s.serving[j], j, held[s.serving[j]]);
      if (out >= 0) free_users[free_count++] = out;
    }
    while (free_count > 0) {
      const int32_t j = free_users[--free_count];
      refused[j] |= 1u << s.serving[j];
      const int32_t next = best_uav(c, r, s, rng, sinr, j, refused[j]);
      s.serving[j] = next;
      if (next < 0) continue;  // no UAV left for j
      const int32_t out = admit(c, s, rng, sinr, next, j, held[next]);
      if (out >= 0) free_users[free_count++] = out;
    }
  }

  // Per UAV, the unserved users it could serve but for max_connections (or, when min_sinr_db lets a user see several
  // UAVs, because a full one turned them away first): what a UAV that wants to take load off a neighbour needs.
  HD static void count_unserved_in_range(const Config& c, const UavRadio& r, State& s, const double* sinr) {
    const int32_t n = c.num_users;
    for (int32_t u = 0; u < c.num_uavs; ++u) {
      const double* row = sinr + u * n;
      int32_t count = 0;
      for (int32_t j = 0; j < n; ++j) count += (s.serving[j] < 0) & (row[j] >= r.min_sinr_linear);
      s.unserved_in_range[u] = count;
    }
  }

  // The backhaul links of one step: the links [U * G] to the GBSs, then the UAV pairs u < v in row order.
  struct BackhaulLinks {
    static constexpr int32_t kMax = kMaxUavs * kMaxGbs + kMaxUavs * (kMaxUavs - 1) / 2;
    int32_t count;
    double d2[kMax], tx_dbm[kMax];          // squared length, transmit power
    double snr_db[kMax], capacity[kMax];    // free-space SNR and capacity (bps)
    int32_t pair_link[kMaxUavs][kMaxUavs];  // the link of UAV pair (u, v), either order
  };

  // SNR and capacity of every backhaul link, in one vectorisable pass.
  HMASD_TARGET_CLONES HD static void backhaul_snr_and_capacity(const Config& c, const UavRadio& r,
                                                              BackhaulLinks& links) {
    const double to_exponent = 2.302585092994046 / 10.0;  // 10^(x / 10) = e^(x ln10 / 10)
    HMASD_SIMD
    for (int32_t k = 0; k < links.count; ++k) {
      const double d2 = links.d2[k] < 1.0 ? 1.0 : links.d2[k];
      const double snr = links.tx_dbm[k] - (10.0 * fast_log10(d2) + r.fspl_const_db) - c.noise_dbm;
      links.snr_db[k] = snr;
      links.capacity[k] = r.bandwidth_hz * fast_log2(1.0 + fast_exp(snr * to_exponent));
    }
  }

  // Layered shortest routes (docs/envs.md): hops, next hop and the bottleneck capacity of every UAV's route.
  HD static void route(const Config& c, const UavRadio& r, State& s, double* route_capacity) {
    const int32_t nu = c.num_uavs, ng = num_gbs(c);
    BackhaulLinks links;
    int32_t count = 0;
    for (int32_t u = 0; u < nu; ++u)
      for (int32_t g = 0; g < ng; ++g, ++count) {
        double gbs[3];
        gbs_position(c, g, gbs);
        const double dx = double(s.uav[u][0]) - gbs[0], dy = double(s.uav[u][1]) - gbs[1];
        const double dz = double(s.uav[u][2]) - gbs[2];
        links.d2[count] = dx * dx + dy * dy + dz * dz;
        links.tx_dbm[count] = c.gbs_tx_power_dbm;
      }
    for (int32_t u = 0; u < nu; ++u)
      for (int32_t v = u + 1; v < nu; ++v, ++count) {
        const double dx = double(s.uav[u][0]) - double(s.uav[v][0]), dy = double(s.uav[u][1]) - double(s.uav[v][1]);
        const double dz = double(s.uav[u][2]) - double(s.uav[v][2]);
        links.d2[count] = dx * dx + dy * dy + dz * dz;
        links.tx_dbm[count] = c.uav_tx_power_dbm;
        links.pair_link[u][v] = links.pair_link[v][u] = count;
      }
    for (int32_t u = 0; u < nu; ++u) links.pair_link[u][u] = 0;
    links.count = count;
    backhaul_snr_and_capacity(c, r, links);
    const double* snr_db = links.snr_db;
    const double* capacity = links.capacity;
    for (int32_t u = 0; u < nu; ++u) {
      s.hops[u] = 0;
      s.next_hop[u] = -1;
      s.gbs_links[u] = 0;
      s.uav_links[u] = 0;
      route_capacity[u] = 0.0;
      double best_snr = 0.0;
      for (int32_t g = 0; g < ng; ++g) {
        const double snr = snr_db[u * ng + g];
        if (!(snr >= c.backhaul_min_snr_db)) continue;
        s.gbs_links[u] |= 1u << g;
        if (s.hops[u] == 0 || snr > best_snr) {
          best_snr = snr;
          s.hops[u] = 1;
          s.next_hop[u] = nu + g;
          route_capacity[u] = capacity[u * ng + g];
        }
      }
      for (int32_t v = 0; v < nu; ++v) {  // branch-free: links.pair_link[u][u] is a valid index, masked out
        const bool linked = (v != u) & (snr_db[links.pair_link[u][v]] >= c.backhaul_min_snr_db);
        s.uav_links[u] |= uint32_t(linked) << v;
      }
    }
    for (int32_t layer = 2; layer <= c.max_hops; ++layer) {
      int32_t found[kMaxUavs];
      double found_capacity[kMaxUavs];
      int32_t found_count = 0;
      for (int32_t u = 0; u < nu; ++u) {
        if (s.hops[u] != 0) continue;
        int32_t best = -1;
        double best_capacity = 0.0;
        for (int32_t v = 0; v < nu; ++v) {
          if (!(s.uav_links[u] >> v & 1u) || s.hops[v] != layer - 1) continue;
          const double link = capacity[links.pair_link[u][v]];
          const double bottleneck = link < route_capacity[v] ? link : route_capacity[v];
          if (best < 0 || bottleneck > best_capacity) best = v, best_capacity = bottleneck;
        }
        if (best >= 0) {
          s.next_hop[u] = best;
          found[found_count] = u;
          found_capacity[found_count++] = best_capacity;
        }
      }
      for (int32_t k = 0; k < found_count; ++k) {  // set after the scan: layer k relays only through layer k - 1
        s.hops[found[k]] = layer;
        route_capacity[found[k]] = found_capacity[k];
      }
    }
  }

  // Association, routes, roles, throughput and reward terms at the current positions and time; the SINR of
  // every link is written to sinr_db_out ([U, N]) when it is not null.
  HD static void evaluate_radio(const Config& c, State& s, const EnvRng& rng, double* sinr_db_out) {
    const int32_t nu = c.num_uavs, n = c.num_users;
    const UavRadio r = radio_constants(c);
    double sinr[kMaxUavs * kMaxUsers];
    link_sinr(c, r, s, rng, sinr);
    if (sinr_db_out)
      for (int32_t k = 0; k < nu * n; ++k) sinr_db_out[k] = 10.0 * log10(sinr[k]);
    associate(c, r, s, rng, sinr);
    count_unserved_in_range(c, r, s, sinr);

    double route_capacity[kMaxUavs];
    if (cooperative(c)) {
      route(c, r, s, route_capacity);
    } else {
      for (int32_t u = 0; u < nu; ++u) s.hops[u] = 0, s.next_hop[u] = -1, s.gbs_links[u] = s.uav_links[u] = 0;
    }
    for (int32_t u = 0; u < nu; ++u) s.role[u] = s.served_count[u] > 0 ? kBaseStation : kUnassigned;
    for (int32_t u = 0; u < nu; ++u)
      if (s.next_hop[u] >= 0 && s.next_hop[u] < nu) s.role[s.next_hop[u]] = kRelay;

    double sum_rate[kMaxUavs];
    for (int32_t u = 0; u < nu; ++u) sum_rate[u] = 0.0;
    double quality_sum = 0.0;
    int32_t served = 0;
    const double min_sinr_db = c.min_sinr_db;
    // The logs of every user's serving link in one vectorisable pass (1 for unserved users, whose terms are
    // skipped); the sums then run in user order.
    double link[kMaxUsers], spectral[kMaxUsers], link_db[kMaxUsers];
    // Selects, not branches (whether a user is served is a coin flip to the branch predictor): an unserved user
    // adds an exact +0.0 to UAV 0's sums, which leaves them bit for bit as they were.
    for (int32_t j = 0; j < n; ++j) {
      const int32_t u = s.serving[j] >= 0 ? s.serving[j] : 0;
      link[j] = s.serving[j] >= 0 ? sinr[u * n + j] : 1.0;
    }
    serving_link_logs(n, link, spectral, link_db);
    for (int32_t j = 0; j < n; ++j) {
      const bool is_served = s.serving[j] >= 0;
      const int32_t u = is_served ? s.serving[j] : 0;
      const double weight = is_served ? 1.0 : 0.0;
      const double users = s.served_count[u] > 0 ? double(s.served_count[u]) : 1.0;
      const double share = c.bandwidth_sharing == 0 ? r.bandwidth_hz : r.bandwidth_hz / users;
      sum_rate[u] += weight * (share * spectral[j]);
      quality_sum += weight * clip((link_db[j] - min_sinr_db) / 30.0, 0.0, 1.0);
      served += is_served;
    }
    double system = 0.0, hops_sum = 0.0, height_sum = 0.0;
    int32_t routed = 0;
    for (int32_t u = 0; u < nu; ++u) {
      double throughput = sum_rate[u];
      if (cooperative(c)) {
        if (s.hops[u] > 0) {
          const double backhaul = route_capacity[u] / s.hops[u];
          throughput = throughput < backhaul ? throughput : backhaul;
          hops_sum += s.hops[u];
          routed += 1;
        } else {
          throughput = 0.0;
        }
      }
      system += throughput;
      height_sum += double(s.uav[u][2]);
    }
    double* m = s.metric;
    m[kSystemThroughput] = system / 1e6;
    m[kAvgThroughputPerUser] = system / 1e6 / n;
    m[kConnectedUsers] = served;
    m[kCoverageRatio] = m[kRewardCoverage] = double(served) / n;
    m[kRewardQuality] = served > 0 ? quality_sum / served : 0.0;
    m[kConnectivityRatio] = m[kRewardConnectivity] = cooperative(c) ? double(routed) / nu : 1.0;
    m[kAvgHops] = routed > 0 ? hops_sum / routed : 0.0;
    m[kRewardHops] = cooperative(c) ? m[kAvgHops] / c.max_hops : 0.0;
    const double norm = system / (nu * r.bandwidth_hz * log2(1001.0));
    m[kRewardThroughput] = norm < 1.0 ? norm : 1.0;
    m[kRewardHeight] = (height_sum / nu - c.min_height) / (c.max_height - c.min_height);
  }

  HD static double reward(const Config& c, const State& s) {
    const double* m = s.metric;
    if (!cooperative(c)) return 0.7 * m[kRewardCoverage] + 0.3 * m[kRewardQuality] - 0.1 * m[kRewardHeight];
    return 0.4 * m[kRewardCoverage] + 0.2 * m[kRewardQuality] + 0.2 * m[kRewardConnectivity] +
           0.2 * m[kRewardThroughput] - 0.1 * m[kRewardHops];
  }

  // ---- step -----------------------------------------------------------------------------------
  HD static void move(const Config& c, State& s, const Action* actions) {
    const float step_length = static_cast<float>(c.max_speed) * static_cast<float>(c.dt);
    const float area = static_cast<float>(c.area_size);
    const float low = static_cast<float>(c.min_height), high = static_cast<float>(c.max_height);
    for (int32_t u = 0; u < c.num_uavs; ++u) {
      float a[3] = {0.0f, 0.0f, 0.0f};
      if constexpr (kContinuous) {
        for (int32_t k = 0; k < 3; ++k) a[k] = clipf(actions[3 * u + k], -1.0f, 1.0f);
      } else {
        const int32_t action = actions[u];
        if (action > 0) a[(action - 1) / 2] = (action - 1) % 2 == 0 ? 1.0f : -1.0f;
      }
      // Products and sums rounded separately: written so that no compiler contracts them into an FMA.
      const float dx = a[0] * step_length, dy = a[1] * step_length, dz = a[2] * step_length;
      s.uav[u][0] = clipf(s.uav[u][0] + dx, 0.0f, area);
      s.uav[u][1] = clipf(s.uav[u][1] + dy, 0.0f, area);
      s.uav[u][2] = clipf(s.uav[u][2] + dz, low, high);
    }
  }

  HD static StepStatus step(const Config& c, State& s, const Action* actions, float* rewards, const EnvRng& rng) {
    move(c, s, actions);
    s.t += 1;
    evaluate_radio(c, s, rng, nullptr);
    const double r = reward(c, s);
    const float shared = static_cast<float>(c.reward_split ? r / c.num_uavs : r);
    for (int32_t u = 0; u < c.num_uavs; ++u) rewards[u] = shared;
    for (int32_t k = 0; k < kNumUavMetrics; ++k) s.metric_sum[k] += s.metric[k];
    for (int32_t u = 0; u < c.num_uavs; ++u) {
      s.served_sum[u] += s.served_count[u];
      s.relay_steps[u] += s.role[u] == kRelay;
      s.base_station_steps[u] += s.role[u] == kBaseStation;
    }
    return {false, s.t >= c.max_steps};
  }

  // ---- observation ----------------------------------------------------------------------------
  HD static void observe(const Config& c, const State& s, float* obs, float* state, bool* action_mask) {
    const int32_t nu = c.num_uavs, n = c.num_users, dim = obs_dim(c);
    const float area = static_cast<float>(c.area_size), low = static_cast<float>(c.min_height);
    const float span = static_cast<float>(c.max_height) - low;
    const float time = static_cast<float>(s.t) / static_cast<float>(c.max_steps);
    float uav[kMaxUavs][3], load[kMaxUavs][kLoadWidth];
    if (c.uav_load) write_loads(c, s, load);
    for (int32_t u = 0; u < nu; ++u) {
      uav[u][0] = s.uav[u][0] / area;
      uav[u][1] = s.uav[u][1] / area;
      uav[u][2] = (s.uav[u][2] - low) / span;
    }
    // The user block is the same for every agent: written once to the state, then copied.
    const int32_t users_width = user_block(c);
    float* state_users = state + 3 * nu;
    float* state_served = state_users + users_width + 1;
    if (c.user_grid > 0) {
      write_user_grid(c, s, state_users, state_served);
    } else {
      for (int32_t j = 0; j < n; ++j) {
        state_users[2 * j] = s.user[j][0] / area;
        state_users[2 * j + 1] = s.user[j][1] / area;
        state_served[j] = s.serving[j] >= 0 ? 1.0f : 0.0f;
      }
    }
    for (int32_t u = 0; u < nu; ++u) {
      float* o = obs + u * dim;
      *o++ = uav[u][0], *o++ = uav[u][1], *o++ = uav[u][2];
      for (int32_t k = 0; k < users_width; ++k) o[k] = state_users[k];
      o += users_width;
      for (int32_t k = 1; k < nu; ++k) {
        const int32_t v = (u + k) % nu;
        *o++ = uav[v][0], *o++ = uav[v][1], *o++ = uav[v][2];
      }
      *o++ = time;
      if (cooperative(c)) {
        for (int32_t role = 0; role < 3; ++role) *o++ = s.role[u] == role ? 1.0f : 0.0f;
        for (int32_t g = 0; g < c.n_ground_bs; ++g) *o++ = (s.gbs_links[u] >> g & 1u) ? 1.0f : 0.0f;
        *o++ = static_cast<float>(s.hops[u]) / static_cast<float>(c.max_hops);
      }
      if (c.uav_load)
        for (int32_t k = 0; k < nu; ++k)
          for (int32_t i = 0; i < kLoadWidth; ++i) *o++ = load[(u + k) % nu][i];
      if (!kContinuous)
        for (int32_t k = 0; k < kNumDiscreteActions; ++k) action_mask[u * kNumDiscreteActions + k] = true;
    }
    for (int32_t u = 0; u < nu; ++u) state[3 * u] = uav[u][0], state[3 * u + 1] = uav[u][1], state[3 * u + 2] = uav[u][2];
    state_users[users_width] = time;
    if (c.uav_load) {
      float* out = state_served + served_block(c);
      for (int32_t u = 0; u < nu; ++u)
        for (int32_t i = 0; i < kLoadWidth; ++i) *out++ = load[u][i];
    }
  }

  // Every UAV's load (option uav_load): served users and unserved users in range (capped at max_connections), each
  // over max_connections; then the mean offset (x, y) from the UAV of the users it serves, in units of
  // load_offset_scale (area_size when 0), as 0.5 + 0.5 * clamp(offset, -1, 1) (0.5 without users): the direction
  // that would raise its users' SINR. A scale of a few steps' flight resolves the last metres of centring, which
  // area units squeeze into a few thousandths of the input.
  HD static void write_loads(const Config& c, const State& s, float (*load)[kLoadWidth]) {
    const int32_t nu = c.num_uavs, n = c.num_users;
    const float capacity = static_cast<float>(c.max_connections);
    const double scale = c.load_offset_scale > 0.0 ? c.load_offset_scale : c.area_size;
    double offset[kMaxUavs][2];
    for (int32_t u = 0; u < nu; ++u) offset[u][0] = offset[u][1] = 0.0;
    for (int32_t j = 0; j < n; ++j) {
      const int32_t u = s.serving[j];
      if (u < 0) continue;
      offset[u][0] += double(s.user[j][0]) - double(s.uav[u][0]);
      offset[u][1] += double(s.user[j][1]) - double(s.uav[u][1]);
    }
    for (int32_t u = 0; u < nu; ++u) {
      const int32_t served = s.served_count[u];
      const int32_t waiting = s.unserved_in_range[u] < c.max_connections ? s.unserved_in_range[u] : c.max_connections;
      load[u][0] = static_cast<float>(served) / capacity;
      load[u][1] = static_cast<float>(waiting) / capacity;
      for (int32_t k = 0; k < 2; ++k) {
        const double mean = served > 0 ? offset[u][k] / served / scale : 0.0;
        load[u][2 + k] = static_cast<float>(0.5 + 0.5 * clip(mean, -1.0, 1.0));
      }
    }
  }

  // Cell of a point given in area units ([0, 1] inside the area; outside, the nearest edge cell): row-major,
  // x then y. Clamped as a float before the cast, so any finite position gives a valid cell.
  HD static int32_t grid_cell(float x, float y, int32_t grid) {
    const float top = static_cast<float>(grid - 1);
    float gx = x * static_cast<float>(grid), gy = y * static_cast<float>(grid);
    gx = gx < 0.0f ? 0.0f : (gx > top ? top : gx);
    gy = gy < 0.0f ? 0.0f : (gy > top ? top : gy);
    return static_cast<int32_t>(gx) * grid + static_cast<int32_t>(gy);
  }

  // Users and served users per cell, as fractions of all users: counted in float (exact below 2^24), then divided,
  // the same arithmetic as the reference's integer counts over num_users.
  HD static void write_user_grid(const Config& c, const State& s, float* users, float* served) {
    const int32_t cells = c.user_grid * c.user_grid, n = c.num_users;
    const float area = static_cast<float>(c.area_size);
    for (int32_t k = 0; k < cells; ++k) users[k] = 0.0f, served[k] = 0.0f;
    for (int32_t j = 0; j < n; ++j) {
      const int32_t cell = grid_cell(s.user[j][0] / area, s.user[j][1] / area, c.user_grid);
      users[cell] += 1.0f;
      if (s.serving[j] >= 0) served[cell] += 1.0f;
    }
    const float total = static_cast<float>(n);
    for (int32_t k = 0; k < cells; ++k) users[k] /= total, served[k] /= total;
  }

  HD static void episode_info(const Config& c, const State& s, float* info) {
    const double steps = s.t > 0 ? double(s.t) : 1.0;
    for (int32_t k = 0; k < kNumUavMetrics; ++k) info[k] = static_cast<float>(s.metric_sum[k] / steps);
    const int32_t nu = c.num_uavs;
    for (int32_t u = 0; u < nu; ++u) {
      info[kNumUavMetrics + u] = static_cast<float>(s.served_sum[u] / steps);
      info[kNumUavMetrics + nu + u] = static_cast<float>(s.relay_steps[u] / steps);
      info[kNumUavMetrics + 2 * nu + u] = static_cast<float>(s.base_station_steps[u] / steps);
    }
  }
};

using UavCoverage = UavCoverageT<true>;
using UavCoverageDiscrete = UavCoverageT<false>;

}  // namespace hmasd
