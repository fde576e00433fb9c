"""``zgos.compute.pool``: every new connection the pool opens is in the connection log
(``zgos.runtime.logs``), as dialled and as connected; a reused keep-alive connection is not
logged again. A real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from zgos.compute.pool import Pool
from zgos.runtime.logs import CONNECTION_LOGGER


async def _two_posts_then_stop() -> int:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    pool = Pool(timeout_s=5, connect_timeout_s=5)
    try:
        for _ in range(2):
            got = await pool.post(f"http://127.0.0.1:{port}/", b"{}", {"content-type": "application/json"})
            assert got.status == 200
            await got.read()
    finally:
        await pool.close()
        await runner.cleanup()
    return port


def test_a_pool_logs_each_new_connection_once_as_dialled_and_as_connected(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CONNECTION_LOGGER)
    port = asyncio.run(_two_posts_then_stop())
    lines = [r.getMessage() for r in caplog.records if r.name == CONNECTION_LOGGER]
    assert lines == [f"connect 127.0.0.1:{port} -> 127.0.0.1"]
