"""hmasd's own DLPack export and import (the path the CUDA buffers take), held to torch and NumPy on host memory."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from hmasd import _native

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])
def test_an_exported_buffer_is_the_same_memory_in_torch_and_numpy(dtype):
    array = (np.arange(24) % 3).astype(dtype).reshape(2, 3, 4)
    buffer = _native.dlpack_view(array)
    assert buffer.__dlpack_device__() == (1, 0) and buffer.shape == (2, 3, 4)
    tensor = torch.from_dlpack(buffer)
    assert tensor.data_ptr() == array.ctypes.data == buffer.data_ptr
    assert tuple(tensor.shape) == array.shape
    np.testing.assert_array_equal(tensor.numpy(), array)
    again = np.from_dlpack(_native.dlpack_view(array))
    assert again.ctypes.data == array.ctypes.data
    tensor[1, 2, 3] = 1
    assert array[1, 2, 3] == 1


def test_a_consumer_keeps_the_owner_alive_and_releases_it():
    class Owner(np.ndarray):
        pass

    array = np.arange(6, dtype=np.float32).view(Owner)
    alive = weakref.ref(array)
    tensor = torch.from_dlpack(_native.dlpack_view(array))
    del array
    gc.collect()
    assert alive() is not None, "the exported memory was freed while torch still uses it"
    assert tensor.sum().item() == 15.0
    del tensor
    gc.collect()
    assert alive() is None, "the DLPack deleter never released the owner"


def test_an_unconsumed_capsule_releases_its_owner():
    array = np.arange(4, dtype=np.int32).view(type("Owner", (np.ndarray,), {}))
    alive = weakref.ref(array)
    capsule = _native.dlpack_view(array).__dlpack__()
    del array, capsule
    gc.collect()
    assert alive() is None


def test_export_refuses_a_copy_or_another_device():
    buffer = _native.dlpack_view(np.zeros(3, np.float32))
    with pytest.raises(BufferError, match="without a copy"):
        buffer.__dlpack__(copy=True)
    with pytest.raises(BufferError, match="own device"):
        buffer.__dlpack__(dl_device=(2, 0))


def test_import_reads_a_torch_tensor_in_place_and_refuses_other_layouts():
    tensor = torch.arange(12, dtype=torch.int64).reshape(3, 4)
    info = _native.dlpack_describe(tensor)
    assert info == {"data_ptr": tensor.data_ptr(), "shape": (3, 4), "dtype": "int64", "device": (1, 0)}
    assert _native.dlpack_describe(torch.zeros(2, 5, dtype=torch.bool))["dtype"] == "bool8"
    with pytest.raises(ValueError, match="must be C-contiguous"):
        _native.dlpack_describe(tensor[:, ::2])
    with pytest.raises(ValueError, match="must be C-contiguous"):
        _native.dlpack_describe(tensor.t())
    with pytest.raises(TypeError, match="object with __dlpack__"):
        _native.dlpack_describe([1, 2, 3])
    # a size-1 dimension may carry any stride
    assert _native.dlpack_describe(tensor[:1])["shape"] == (1, 4)


def test_import_refuses_an_unaligned_tensor():
    raw = np.zeros(17, np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.float32, count=4, offset=1)
    with pytest.raises(ValueError, match="not aligned"):
        _native.dlpack_describe(unaligned)
