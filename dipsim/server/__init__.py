"""`dipsim serve`: an HTTP API (FastAPI, OpenAPI-documented) over the same functions the command line calls.

The server holds no payment logic of its own: a run is `scenarios.check_variants` then `scenarios.run_scenarios`
(the one payment chain, `payment.chain.run_chain`) on a region read with `io.validate.load_cases` and
`region.Region.of`, grouped once with `scenarios.grouped_cached`; a case is explained by
`payment.explain.explain_case` on the region's baseline settlement folder. So a run's payouts equal
`dipsim scenarios run` on the same region and variant, to the fen (tested).

Modules: `store` (the data folder: generated ids, indexes, audit log), `accounts` (users, argon2 password hashes,
bearer tokens, login rate limiting), `regions` (a region's files, its demo build, and what is loaded of it),
`runs` (runs in a worker pool, kept on disk), `uploads` (regions made from uploaded claims and hospitals tables
through the same loader, `regions.assemble_region`), `projections` (多年预测: `project.project` /
`project_draws` on a region, in the background), `app` (`create_app`: the routes and the scope checks).

FastAPI, uvicorn and argon2-cffi are an optional extra (`pip install 'dipsim[server]'`): importing this package
needs none of them; `create_app` does.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """The ASGI app (`dipsim.server.app.create_app`): imported here lazily, FastAPI being optional."""
    from dipsim.server.app import create_app as make

    return make(*args, **kwargs)
