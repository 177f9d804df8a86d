"""Keep scheduled jobs across a release that moved the function they call.

APScheduler stores each job with its function as an import path ("module:function") inside a
pickled state. Release 0.2 installed the code under `costwarden.*`, so a job stored by an older
daemon names `agent.daemon:sweep_policy_job`, which no longer imports; APScheduler would drop it
with a log line and the daemon would add it again with a fresh clock, sweeping at once instead
of when the policy's schedule says. Rewriting the path before the scheduler starts keeps every
job's next run time. The table is APScheduler's, not ours, so this is not an Alembic migration:
it runs where the scheduler is built, and only ever renames paths listed here.
"""

from __future__ import annotations

import pickle

from sqlalchemy import Engine, MetaData, Table, inspect, select, update

MOVED = {"agent.daemon:sweep_policy_job": "costwarden.agent.server.daemon:sweep_policy_job"}


def rewrite_moved_job_refs(engine: Engine, table: str = "apscheduler_jobs") -> list[str]:
    """Point stored jobs whose function moved at its new path; the ids of the jobs rewritten."""
    if not inspect(engine).has_table(table):
        return []
    jobs = Table(table, MetaData(), autoload_with=engine)
    rewritten: list[str] = []
    with engine.begin() as conn:
        for job_id, blob in conn.execute(select(jobs.c.id, jobs.c.job_state)).all():
            state = pickle.loads(blob)  # noqa: S301 - APScheduler's own rows in our own database
            if state.get("func") not in MOVED:
                continue
            state["func"] = MOVED[state["func"]]
            conn.execute(update(jobs).where(jobs.c.id == job_id)
                         .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL)))
            rewritten.append(job_id)
    return rewritten
