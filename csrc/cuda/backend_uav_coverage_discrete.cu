// The CUDA backend of UavCoverageDiscrete: one translation unit per env, so that the envs compile in parallel.
#include "cuda/device_owners.cuh"

namespace hmasd {
template std::unique_ptr<DeviceEnv> make_device_env<UavCoverageDiscrete>(const UavCoverageDiscrete::Config&, int32_t, uint64_t,
    uint32_t, int32_t, int32_t);
}  // namespace hmasd
