"""Load a SavedModel through TensorFlow's C API and run its signatures.

TensorFlow Serving loads a model with the C++ function
``tensorflow::LoadSavedModel`` (the ``tf.saved_model`` *v1* loader: it
restores the variables and runs the init ops of one MetaGraphDef inside a
plain ``Session``), not with the Python ``tf.saved_model.load``.  The Serving
binary cannot be installed here, but the C API function
``TF_LoadSessionFromSavedModel`` is a thin wrapper around that very same
loader, and the pip wheel ships it in ``tensorflow/libtensorflow_cc.so.2``.

This module drives that entry point with :mod:`ctypes`, so a test can check
that an export loads and that its SignatureDefs run the way the model server
would run them: the feeds and fetches are the tensor names recorded in the
SignatureDef, executed with ``TF_SessionRun``; no Python ``tf.function``
machinery is involved.

Example::

    with CApiSavedModel(export_dir) as model:
        outputs = model.run("serving_default", {"x": np.zeros((1, 2), "f4")})
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Mapping, Sequence
from types import TracebackType

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

__all__ = ["CApiSavedModel"]

# --------------------------------------------------------------------------
# Shared library and the C declarations we use.
# --------------------------------------------------------------------------

# The C API session/graph functions live in libtensorflow_cc.so.2; the
# tensor/status helpers (TF_AllocateTensor, TF_NewStatus, ...) live in its
# dependency libtensorflow_framework.so.2.  ``dlsym`` on the libtensorflow_cc
# handle searches its dependencies too, so one handle resolves everything.
_CC_LIBRARY = "libtensorflow_cc.so.2"

# TF_DataType values (tensorflow/c/tf_datatype.h); they equal types_pb2.DataType.
_NUMPY_TO_TF: dict[np.dtype, int] = {
    np.dtype(np.float32): 1,  # TF_FLOAT
    np.dtype(np.float64): 2,  # TF_DOUBLE
    np.dtype(np.int32): 3,  # TF_INT32
    np.dtype(np.int64): 9,  # TF_INT64
}
_TF_TO_NUMPY: dict[int, np.dtype] = {v: k for k, v in _NUMPY_TO_TF.items()}
# Strings: fed from numpy arrays of str or bytes (object or "U"/"S" dtypes), fetched as
# object arrays of bytes; each element is a 24-byte TF_TString in the tensor's buffer.
_TF_STRING = 7
_TSTRING_BYTES = 24

_TF_OK = 0


class _TFBuffer(ctypes.Structure):
    """``TF_Buffer``: a byte range plus an optional deallocator."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("length", ctypes.c_size_t),
        ("data_deallocator", ctypes.c_void_p),
    ]


class _TFOutput(ctypes.Structure):
    """``TF_Output``: one output (or input) endpoint ``operation:index``."""

    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


_P = ctypes.c_void_p  # every opaque TF_* handle is passed as a void pointer
_BUFFER_P = ctypes.POINTER(_TFBuffer)

# name -> (restype, argtypes)
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "TF_NewStatus": (_P, []),
    "TF_DeleteStatus": (None, [_P]),
    "TF_GetCode": (ctypes.c_int, [_P]),
    "TF_Message": (ctypes.c_char_p, [_P]),
    "TF_NewBuffer": (_BUFFER_P, []),
    "TF_DeleteBuffer": (None, [_BUFFER_P]),
    "TF_NewGraph": (_P, []),
    "TF_DeleteGraph": (None, [_P]),
    "TF_GraphOperationByName": (_P, [_P, ctypes.c_char_p]),
    "TF_NewSessionOptions": (_P, []),
    "TF_DeleteSessionOptions": (None, [_P]),
    "TF_LoadSessionFromSavedModel": (
        _P,
        [
            _P,  # const TF_SessionOptions*
            _BUFFER_P,  # const TF_Buffer* run_options
            ctypes.c_char_p,  # const char* export_dir
            ctypes.POINTER(ctypes.c_char_p),  # const char* const* tags
            ctypes.c_int,  # int tags_len
            _P,  # TF_Graph*
            _BUFFER_P,  # TF_Buffer* meta_graph_def (out)
            _P,  # TF_Status*
        ],
    ),
    "TF_SessionRun": (
        None,
        [
            _P,  # TF_Session*
            _BUFFER_P,  # const TF_Buffer* run_options
            ctypes.POINTER(_TFOutput),  # const TF_Output* inputs
            ctypes.POINTER(_P),  # TF_Tensor* const* input_values
            ctypes.c_int,  # int ninputs
            ctypes.POINTER(_TFOutput),  # const TF_Output* outputs
            ctypes.POINTER(_P),  # TF_Tensor** output_values (out)
            ctypes.c_int,  # int noutputs
            ctypes.POINTER(_P),  # const TF_Operation* const* target_opers
            ctypes.c_int,  # int ntargets
            _BUFFER_P,  # TF_Buffer* run_metadata
            _P,  # TF_Status*
        ],
    ),
    "TF_CloseSession": (None, [_P, _P]),
    "TF_DeleteSession": (None, [_P, _P]),
    "TF_AllocateTensor": (
        _P,
        [ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_size_t],
    ),
    "TF_DeleteTensor": (None, [_P]),
    "TF_TensorType": (ctypes.c_int, [_P]),
    "TF_NumDims": (ctypes.c_int, [_P]),
    "TF_Dim": (ctypes.c_int64, [_P, ctypes.c_int]),
    "TF_TensorByteSize": (ctypes.c_size_t, [_P]),
    "TF_TensorData": (ctypes.c_void_p, [_P]),
    # TF_STRING tensors hold TF_TString elements (tensorflow/core/platform/ctstring.h).
    "TF_StringInit": (None, [_P]),
    "TF_StringCopy": (None, [_P, ctypes.c_char_p, ctypes.c_size_t]),
    "TF_StringGetDataPointer": (ctypes.c_void_p, [_P]),
    "TF_StringGetSize": (ctypes.c_size_t, [_P]),
    "TF_StringDealloc": (None, [_P]),
}

_lib: ctypes.CDLL | None = None


def _library_path() -> str:
    """Path of ``libtensorflow_cc.so.2`` in the installed ``tensorflow`` wheel."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tensorflow package is not installed")
    for directory in spec.submodule_search_locations:
        candidate = os.path.join(directory, _CC_LIBRARY)
        if os.path.exists(candidate):
            return candidate
    raise ImportError(f"{_CC_LIBRARY} not found in the tensorflow package")


def _c_api() -> ctypes.CDLL:
    """Load the C API once and declare the prototypes of the functions used."""
    global _lib
    if _lib is None:
        # Same path as the one the tensorflow Python extension links against,
        # so the process shares a single TF runtime (op registry, kernels).
        lib = ctypes.CDLL(_library_path())
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        _lib = lib
    return _lib


# --------------------------------------------------------------------------
# Small helpers around TF_Status and TF_Tensor.
# --------------------------------------------------------------------------


class _Status:
    """Owns one ``TF_Status``; :meth:`check` turns a failure into RuntimeError."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        self.handle: int = lib.TF_NewStatus()

    def check(self, what: str) -> None:
        code = self._lib.TF_GetCode(self.handle)
        if code != _TF_OK:
            message = self._lib.TF_Message(self.handle).decode("utf-8", "replace")
            raise RuntimeError(f"{what} failed (TF error code {code}): {message}")

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lib.TF_DeleteStatus(self.handle)


def _is_text(value: np.ndarray) -> bool:
    return value.dtype.kind in "OUS"


def _to_tf_string_tensor(lib: ctypes.CDLL, value: np.ndarray) -> int:
    """A ``TF_STRING`` tensor holding the elements of `value` (str encoded as UTF-8)."""
    value = np.asarray(value, dtype=object)
    dims = (ctypes.c_int64 * value.ndim)(*value.shape)
    tensor = lib.TF_AllocateTensor(_TF_STRING, dims, value.ndim, value.size * _TSTRING_BYTES)
    if not tensor:
        raise MemoryError("TF_AllocateTensor returned NULL")
    base = lib.TF_TensorData(tensor)
    for i, item in enumerate(value.reshape(-1)):
        data = item.encode() if isinstance(item, str) else bytes(item)
        element = base + i * _TSTRING_BYTES
        lib.TF_StringInit(element)
        lib.TF_StringCopy(element, data, len(data))
    return tensor


def _from_tf_string_tensor(lib: ctypes.CDLL, tensor: int, shape: tuple[int, ...]) -> np.ndarray:
    base = lib.TF_TensorData(tensor)
    items = []
    for i in range(int(np.prod(shape, dtype=np.int64))):
        element = base + i * _TSTRING_BYTES
        items.append(ctypes.string_at(lib.TF_StringGetDataPointer(element),
                                      lib.TF_StringGetSize(element)))
    result = np.empty(len(items), dtype=object)
    result[:] = items
    return result.reshape(shape)


def _to_tf_tensor(lib: ctypes.CDLL, value: np.ndarray) -> int:
    """Copy a numpy array into a freshly allocated ``TF_Tensor`` (same rank)."""
    if _is_text(value):
        return _to_tf_string_tensor(lib, value)
    dtype = _NUMPY_TO_TF.get(value.dtype)
    if dtype is None:
        raise TypeError(f"unsupported input dtype {value.dtype}")
    # np.asarray keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
    value = np.asarray(value, order="C")
    dims = (ctypes.c_int64 * value.ndim)(*value.shape)
    tensor = lib.TF_AllocateTensor(dtype, dims, value.ndim, value.nbytes)
    if not tensor:
        raise MemoryError("TF_AllocateTensor returned NULL")
    if value.nbytes:
        ctypes.memmove(lib.TF_TensorData(tensor), value.ctypes.data, value.nbytes)
    return tensor


def _from_tf_tensor(lib: ctypes.CDLL, tensor: int) -> np.ndarray:
    """Copy a ``TF_Tensor`` into a new numpy array (the tensor is not freed)."""
    tf_dtype = lib.TF_TensorType(tensor)
    shape = tuple(lib.TF_Dim(tensor, i) for i in range(lib.TF_NumDims(tensor)))
    if tf_dtype == _TF_STRING:
        return _from_tf_string_tensor(lib, tensor, shape)
    dtype = _TF_TO_NUMPY.get(tf_dtype)
    if dtype is None:
        raise TypeError(f"unsupported output TF_DataType {tf_dtype}")
    result = np.empty(shape, dtype=dtype)
    nbytes = lib.TF_TensorByteSize(tensor)
    if nbytes != result.nbytes:
        raise RuntimeError(f"tensor holds {nbytes} bytes, expected {result.nbytes}")
    if nbytes:
        ctypes.memmove(result.ctypes.data, lib.TF_TensorData(tensor), nbytes)
    return result


def _split_tensor_name(name: str) -> tuple[str, int]:
    """``"op:1"`` -> ``("op", 1)``; a bare ``"op"`` means output 0."""
    op_name, sep, index = name.rpartition(":")
    if not sep:
        return name, 0
    return op_name, int(index)


# --------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------


class CApiSavedModel:
    """A SavedModel loaded by ``TF_LoadSessionFromSavedModel``.

    Use as a context manager (or call :meth:`close`) to free the C session and
    graph.  ``signature_defs`` comes from the MetaGraphDef returned by the
    loader, i.e. exactly what a model server would see.
    """

    def __init__(
        self, export_dir: str | os.PathLike[str], tags: Sequence[str] = ("serve",)
    ) -> None:
        self._lib = _c_api()
        self._session: int | None = None
        self._graph: int | None = self._lib.TF_NewGraph()
        try:
            self.meta_graph_def = self._load(os.fspath(export_dir), tags)
        except BaseException:
            self.close()
            raise

    def _load(self, export_dir: str, tags: Sequence[str]) -> meta_graph_pb2.MetaGraphDef:
        """Create the session (into ``self._session``) and return its MetaGraphDef."""
        lib = self._lib
        c_tags = (ctypes.c_char_p * len(tags))(*(t.encode() for t in tags))
        options = lib.TF_NewSessionOptions()
        buffer = lib.TF_NewBuffer()
        try:
            with _Status(lib) as status:
                self._session = lib.TF_LoadSessionFromSavedModel(
                    options,
                    None,
                    os.fsencode(export_dir),
                    c_tags,
                    len(tags),
                    self._graph,
                    buffer,
                    status.handle,
                )
                status.check(f"loading SavedModel {export_dir!r} (tags {list(tags)})")
            contents = buffer.contents
            return meta_graph_pb2.MetaGraphDef.FromString(
                ctypes.string_at(contents.data, contents.length)
            )
        finally:
            lib.TF_DeleteBuffer(buffer)
            lib.TF_DeleteSessionOptions(options)

    @property
    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        """SignatureDefs of the loaded MetaGraphDef, keyed by signature name."""
        return dict(self.meta_graph_def.signature_def)

    def _endpoint(self, info: meta_graph_pb2.TensorInfo) -> _TFOutput:
        """Resolve a TensorInfo (dense tensors only) to a ``TF_Output``."""
        if info.WhichOneof("encoding") != "name":
            raise NotImplementedError("only dense (named) tensors are supported")
        op_name, index = _split_tensor_name(info.name)
        operation = self._lib.TF_GraphOperationByName(self._graph, op_name.encode())
        if not operation:
            raise RuntimeError(f"operation {op_name!r} not found in the graph")
        return _TFOutput(operation, index)

    def _signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        if self._session is None:
            raise RuntimeError("the model has been closed")
        signatures = self.meta_graph_def.signature_def
        if name not in signatures:
            raise KeyError(f"no signature {name!r}; available: {sorted(signatures)}")
        return signatures[name]

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one signature: feed ``inputs`` by key, fetch every output key."""
        signature = self._signature(signature_name)
        expected = sorted(signature.inputs)
        if sorted(inputs) != expected:
            raise ValueError(
                f"signature {signature_name!r} takes inputs {expected}, got {sorted(inputs)}"
            )
        in_keys, out_keys = expected, sorted(signature.outputs)
        arrays = [np.asarray(inputs[key]) for key in in_keys]
        for key, array in zip(in_keys, arrays, strict=True):
            if signature.inputs[key].dtype == _TF_STRING:
                if not _is_text(array):
                    raise TypeError(f"input {key!r} must hold strings, got {array.dtype}")
                continue
            want = _TF_TO_NUMPY.get(signature.inputs[key].dtype)
            if want is None or array.dtype != want:
                expected_dtype = want or f"DataType {signature.inputs[key].dtype}"
                raise TypeError(
                    f"input {key!r} must have dtype {expected_dtype}, got {array.dtype}"
                )

        feeds = (_TFOutput * len(in_keys))(*(self._endpoint(signature.inputs[k]) for k in in_keys))
        fetches = (_TFOutput * len(out_keys))(
            *(self._endpoint(signature.outputs[k]) for k in out_keys)
        )
        feed_values = (_P * len(in_keys))()
        fetch_values = (_P * len(out_keys))()
        try:
            for i, array in enumerate(arrays):
                feed_values[i] = _to_tf_tensor(self._lib, array)
            with _Status(self._lib) as status:
                self._lib.TF_SessionRun(
                    self._session,
                    None,
                    feeds,
                    feed_values,
                    len(in_keys),
                    fetches,
                    fetch_values,
                    len(out_keys),
                    None,
                    0,
                    None,
                    status.handle,
                )
                status.check(f"running signature {signature_name!r}")
            return {
                key: _from_tf_tensor(self._lib, fetch_values[i]) for i, key in enumerate(out_keys)
            }
        finally:
            for tensor in (*feed_values, *fetch_values):
                if tensor:
                    self._lib.TF_DeleteTensor(tensor)

    def close(self) -> None:
        """Close and delete the C session and graph (safe to call twice)."""
        lib, error = self._lib, None
        if self._session is not None:
            session, self._session = self._session, None
            with _Status(lib) as status:
                lib.TF_CloseSession(session, status.handle)
                try:
                    status.check("closing the session")
                except RuntimeError as exc:
                    error = exc
                # Deleting is required even when closing failed.
                lib.TF_DeleteSession(session, status.handle)
        if self._graph is not None:
            graph, self._graph = self._graph, None
            lib.TF_DeleteGraph(graph)
        if error is not None:
            raise error

    def __enter__(self) -> CApiSavedModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
