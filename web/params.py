"""Request parameters shared by the pages and the API (names, types, how they are read)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import FromPath, FromQuery, QueryParameter

Name = FromPath[str]  # a namespace or environment name in the path
BuildId = FromPath[int]
Text = FromQuery[str | None]
Limit = Annotated[int | None, QueryParameter(name="limit", required=False, description="Page size, clamped.")]
Offset = Annotated[int | None, QueryParameter(name="offset", required=False, description="Items to skip.")]
StateParam = Annotated[
    str | None, QueryParameter(name="state", required=False, description="pending, building, ready or failed")
]
SyncParam = Annotated[str | None, QueryParameter(name="sync", required=False, description="Synced or OutOfSync")]
HealthParam = Annotated[
    str | None, QueryParameter(name="health", required=False, description="Healthy, Progressing, Degraded or Missing")
]
FromBuild = Annotated[int | None, QueryParameter(name="from", required=False, description="Older build id.")]
ToBuild = Annotated[int | None, QueryParameter(name="to", required=False, description="Newer build id.")]
