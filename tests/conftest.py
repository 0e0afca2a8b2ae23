import os

# Eight fake CPU devices so that sharding can be tested; x64 for gradient checks.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
# Strict dtype promotion: an implicit mix of dtypes (float32 with float64, an int array with
# a float array) is an error in the tests, so that the library never promotes silently.
jax.config.update("jax_numpy_dtype_promotion", "strict")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Drop compiled programs after each test module, so that one long session does not
    accumulate thousands of executables."""
    yield
    jax.clear_caches()
