from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Codec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CODEC_UNSPECIFIED: _ClassVar[Codec]
    CODEC_RAW: _ClassVar[Codec]
    CODEC_ZSTD_SHARED_FRAMES: _ClassVar[Codec]
CODEC_UNSPECIFIED: Codec
CODEC_RAW: Codec
CODEC_ZSTD_SHARED_FRAMES: Codec

class EncodedArray(_message.Message):
    __slots__ = ("dtype", "shape", "codec", "data", "frame_indices")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDICES_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    codec: Codec
    data: bytes
    frame_indices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., codec: _Optional[_Union[Codec, str]] = ..., data: _Optional[bytes] = ..., frame_indices: _Optional[_Iterable[int]] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("obs", "discrete_action", "reward", "next_obs", "discount", "terminated", "truncated", "n_steps", "worker_id", "episode_id", "step_index", "time", "initial_priority")
    OBS_FIELD_NUMBER: _ClassVar[int]
    DISCRETE_ACTION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    NEXT_OBS_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    N_STEPS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    obs: EncodedArray
    discrete_action: int
    reward: float
    next_obs: EncodedArray
    discount: float
    terminated: bool
    truncated: bool
    n_steps: int
    worker_id: str
    episode_id: int
    step_index: int
    time: float
    initial_priority: float
    def __init__(self, obs: _Optional[_Union[EncodedArray, _Mapping]] = ..., discrete_action: _Optional[int] = ..., reward: _Optional[float] = ..., next_obs: _Optional[_Union[EncodedArray, _Mapping]] = ..., discount: _Optional[float] = ..., terminated: _Optional[bool] = ..., truncated: _Optional[bool] = ..., n_steps: _Optional[int] = ..., worker_id: _Optional[str] = ..., episode_id: _Optional[int] = ..., step_index: _Optional[int] = ..., time: _Optional[float] = ..., initial_priority: _Optional[float] = ...) -> None: ...
