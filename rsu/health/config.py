"""The ``clock:`` configuration section: where the clock's health is read from, what happens to timed
messages while it is not synchronized, and the optional gpsd connection.

Example::

    clock:
      unsynchronized: warn          # or stop: withhold timed messages while the clock is not synchronized
      sync_source: auto             # auto (chrony when it answers, else the kernel) | kernel | chrony
      max_error: 0.1                # an error bound above this counts as not synchronized (default: none)
      timed_messages: [spatem, ssem]
      poll_interval: 5s
      chrony_address: /run/chrony/chronyd.sock   # chronyc -h (default: chronyc's own choice)
      gpsd: {host: 127.0.0.1, port: 2947}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rsu.ops.config_core import Seconds, within


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpsdSection(_Section):
    host: str = Field("127.0.0.1", min_length=1, description="gpsd's address")
    port: int = Field(2947, ge=1, le=65535)


class ClockSection(_Section):
    unsynchronized: Literal["warn", "stop"] = "warn"
    sync_source: Literal["auto", "kernel", "chrony"] = "auto"
    max_error: Annotated[Seconds, within(0.001, 16)] | None = None
    timed_messages: tuple[str, ...] = ("spatem", "ssem")
    poll_interval: Annotated[Seconds, within(0.5, 300)] = 5.0
    chrony_address: str | None = Field(None, min_length=1, description="chronyc -h: a command socket path or host")
    gpsd: GpsdSection | None = None

    @field_validator("timed_messages")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from rsu import catalog

        unknown = [m for m in v if m not in catalog.BY_NAME]
        if unknown:
            raise ValueError(
                f"unknown message {', '.join(map(repr, unknown))} (expected some of: "
                f"{', '.join(k.name for k in catalog.MESSAGES)})"
            )
        return v
