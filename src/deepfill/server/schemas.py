"""Pydantic models of the JSON the API returns (they also shape the OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """Every error the API returns: a stable machine code and a one-line message for people."""

    error: str = Field(description="machine-readable code, e.g. upload_too_large, not_an_image, size_mismatch, busy")
    message: str = Field(description="what went wrong and how to fix it")


class QueueState(BaseModel):
    capacity: int = Field(description="requests admitted at once: one running plus queue_size waiting")
    pending: int = Field(description="requests admitted now (running, waiting or being decoded)")


class Limits(BaseModel):
    max_upload_bytes: int = Field(description="largest request body (image + mask + form) accepted")
    max_pixels: int = Field(description="largest width x height accepted for the image and for the mask")


class Defaults(BaseModel):
    blend: str = Field(description="the compositing used when a request names none (deepfill serve --blend)")
    jpeg_quality: int = Field(description="the JPEG quality of results when a request names none")


class Health(BaseModel):
    status: str = Field(description="always 'ok' while the server answers")
    model: str = Field(description="the model card's name")
    trained: bool = Field(description="false for the untrained placeholder weights")
    device: str
    queue: QueueState
    limits: Limits
    defaults: Defaults


class ModelCard(BaseModel):
    """The JSON model card shipped beside the weights; its keys are passed through unchanged."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    trained: bool | None = None
    description: str | None = None

