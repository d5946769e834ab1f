"""PettingZoo adapters for the native envs: ``alice_and_bob_v0``, ``stag_hunt_v0`` and ``uav_coverage_v0`` each offer
``parallel_env`` (the native parallel API) and ``env`` (AEC); import those modules directly, this package imports
nothing."""
