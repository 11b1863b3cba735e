"""The studio's request bodies: typed, bounded, unknown fields rejected (a typo is a 422, not
a silently ignored setting). Per-run checks (label range, what a family can do) are in runs.py."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 64
MAX_STEPS = 1000
MAX_SEED = 2**32 - 1
# base64 of a 4 MB image plus a data-URL prefix; the decoded size is checked again
MAX_B64 = (4 * 1024 * 1024 * 4) // 3 + 64

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Steps = Annotated[Optional[int], Field(ge=1, le=MAX_STEPS)]
Label = Annotated[Optional[int], Field(ge=0)]
Guidance = Annotated[Optional[float], Field(ge=0.0, le=30.0, allow_inf_nan=False)]
Temperature = Annotated[Optional[float], Field(ge=0.05, le=5.0, allow_inf_nan=False)]
Image64 = Annotated[str, Field(min_length=1, max_length=MAX_B64)]
RunName = Annotated[str, Field(min_length=1, max_length=200)]


class _Request(BaseModel):
    # strict: "4" is not 4 and true is not 1 (a script bug should be seen, not coerced)
    model_config = ConfigDict(extra="forbid", strict=True)
    run: RunName
    seed: Seed = 0
    label: Label = None
    steps: Steps = None


class Generate(_Request):
    kind: Literal["generate"] = "generate"
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 4
    guidance_scale: Guidance = None
    sampler: Optional[Literal["ddim", "ddpm"]] = None
    temperature: Temperature = None


class Img2Img(_Request):
    kind: Literal["img2img"] = "img2img"
    image: Image64
    strength: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.6
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 1
    guidance_scale: Guidance = None


class Inpaint(_Request):
    kind: Literal["inpaint"] = "inpaint"
    image: Image64
    mask: Image64
    n: Annotated[int, Field(ge=1, le=MAX_N)] = 1


class Interpolate(_Request):
    kind: Literal["interpolate"] = "interpolate"
    seed_a: Seed = 0
    seed_b: Seed = 1
    n: Annotated[int, Field(ge=2, le=MAX_N)] = 8      # frames


class PngInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    image: Image64


AnyJob = Annotated[Union[Generate, Img2Img, Inpaint, Interpolate], Field(discriminator="kind")]
