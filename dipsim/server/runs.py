"""Runs of `dipsim serve`: a variant (`set` overlays on the region's baseline, as a scenario file's [[variant]])
checked as the command line checks it (`scenarios.check_variants`, `region.Region.problems`), then run off the
event loop in a worker pool through `scenarios.run_scenarios`, the function `dipsim scenarios run` calls: the
baseline and the variant through the one payment chain. Each run is kept in DIR/runs/<id>/result.json with whole
fen, and logged to the audit log (who, when, the inputs' sha256, the policies' sha256)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dipsim.io.errors import InputError
from dipsim.money import to_fen, to_fen_array
from dipsim.server.store import DataFolder, new_id, now

BASELINE = "baseline"
MAX_PENDING = 64  # runs queued or running at once; more get RunQueueFull (HTTP 503 with Retry-After)


class RunQueueFull(Exception):
    """The run queue holds MAX_PENDING runs already: try again shortly."""


class Runs:
    def __init__(self, data: DataFolder, workers: int = 1, max_pending: int = MAX_PENDING):
        self.data, self.max_pending = data, max_pending
        self.pending = 0  # runs queued or running: the executor's queue is unbounded, so submit bounds it
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dipsim-run")
        self.progress: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        for key, record in data.runs.items():  # a run the last server did not finish will not finish now
            if record.get("status") in ("queued", "running"):
                data.runs.update(key, status="failed", error="the server stopped before the run finished")

    def submit(self, region_id: str, loaded, name: str | None, changes: dict, user) -> tuple[str, dict]:
        """Check the variant and start it: (run id, record). PolicyError / InputError with the command line's
        messages when the variant is not valid."""
        from dipsim.scenarios import check_variants, named_variants

        variants = named_variants([{"name": name, "set": changes}])
        check_variants(loaded.policy, variants, "set")
        variant = variants[0]
        policy = loaded.policy.overlay(variant.changes, name=variant.name)
        problems = loaded.region.problems([(f"variant {variant.name!r}", policy)], (), None, loaded.day)
        if problems:
            raise InputError(f"the region's hospitals and cases: {len(problems)} problem(s):\n  "
                             + "\n  ".join(problems))
        with self._lock:
            if self.pending >= self.max_pending:
                raise RunQueueFull(f"{self.pending} runs are queued or running: try again shortly")
            self.pending += 1
        run_id = new_id("run")
        record = {"region": region_id, "name": variant.name, "set": variant.changes, "status": "queued",
                  "user": user.name, "created": now(), "baseline_sha256": loaded.policy.digest(),
                  "policy_sha256": policy.digest(), "inputs_sha256": loaded.inputs_sha256}
        (self.data.root / "runs" / run_id).mkdir()
        self.data.runs.put(run_id, record)
        self.data.audit.write(action="run", user=user.name, role=user.role, run=run_id, region=region_id,
                              name=variant.name, set=variant.changes, inputs_sha256=loaded.inputs_sha256,
                              baseline_sha256=record["baseline_sha256"], policy_sha256=record["policy_sha256"],
                              set_sha256=_sha256_json(variant.changes))
        self.progress[run_id] = (0, 2)
        try:
            self.executor.submit(self._run, run_id, loaded, variant)
        except BaseException:
            self._finished(run_id, "failed", error="the run could not be queued")
            raise
        return run_id, record

    def _finished(self, run_id: str, status: str, **fields) -> None:
        """The run's last state in the index; it leaves the queue."""
        self.data.runs.update(run_id, status=status, finished=now(), **fields)
        with self._lock:
            self.pending -= 1

    def _run(self, run_id: str, loaded, variant) -> None:
        from dipsim.scenarios import ScenarioSet, run_scenarios, run_schemes

        started = time.perf_counter()
        self.data.runs.update(run_id, status="running")
        try:
            scenario_set = ScenarioSet(name=variant.name, title=variant.name, baseline=loaded.policy,
                                       variants=[variant], source=f"run {run_id}")
            if loaded.mode == "dip":
                grouped = loaded.grouped(None)
            else:
                schemes = run_schemes(scenario_set, loaded.day, loaded.scheme)
                grouped = {s: loaded.grouped(s) for s in dict.fromkeys(schemes.values())}

            def progress(done: int, total: int) -> None:
                self.progress[run_id] = (done, total)

            # the region's CaseSet, made once, and no fund monitoring (a run keeps none): per run, the payment chain
            # of the baseline and the variant and their comparison only
            results = run_scenarios(loaded.cases, loaded.hospitals, scenario_set, grouped, progress=progress,
                                    scheme=loaded.scheme, case_set=loaded.region.case_set, funds=False)
            result = _result(results, variant.name)
            from dipsim.io.writers import write_json

            write_json(result, self.data.root / "runs" / run_id / "result.json")
            self._finished(run_id, "done", elapsed_s=round(time.perf_counter() - started, 3))
        except Exception as exc:  # the run's own failure: said in its status, the server goes on
            self._finished(run_id, "failed", error=str(exc))

    def result(self, run_id: str) -> dict | None:
        path = self.data.root / "runs" / run_id / "result.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def wait(self, timeout: float = 60.0) -> None:
        """Wait until no run is queued or running (tests)."""
        self.data.runs.wait(("queued", "running"), timeout, "runs")


def _sha256_json(value) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _result(results, name: str) -> dict:
    """What a run keeps: per (hospital, pool) the baseline's and the variant's fund payout in whole fen (the
    settlement's, recovered exactly from its yuan) and points, with the hospital's level and type (the pages sum
    them by level and type, in fen); per pool the point values and fund payouts; the summaries of the baseline and
    the variant, with the special-case review's outcome (`scenarios.run_scenarios`' summary)."""
    table = results.hospitals
    base = table[table["scenario"] == BASELINE].set_index(["hospital_id", "pool"])
    var = table[table["scenario"] == name].set_index(["hospital_id", "pool"]).reindex(base.index)
    base_fen, var_fen = to_fen_array(base["fund_payout"].to_numpy()), to_fen_array(var["fund_payout"].to_numpy())
    hospitals = [{"hospital_id": str(h), "pool": str(p), "level": lv, "type": ty, "baseline_fen": int(b),
                  "variant_fen": int(v), "baseline_points": float(bp), "points": float(vp)}
                 for (h, p), lv, ty, b, v, bp, vp in zip(base.index, base["level"], base["type"], base_fen, var_fen,
                                                         base["points"], var["points"])]
    pools = results.pools
    pool_rows = []
    for _, row in pools[pools["scenario"] == name].iterrows():
        before = pools[(pools["scenario"] == BASELINE) & (pools["pool"] == row["pool"])].iloc[0]
        pool_rows.append({"pool": str(row["pool"]), "baseline_point_value": float(before["point_value"]),
                          "point_value": float(row["point_value"]), "status": str(row["status"]),
                          "baseline_fund_payout_fen": to_fen(float(before["fund_payout"])),
                          "fund_payout_fen": to_fen(float(row["fund_payout"]))})
    summary = {}
    for _, row in results.summary.iterrows():
        key = "baseline" if row["scenario"] == BASELINE else "variant"
        summary[key] = {"winners": int(row["winners"]), "losers": int(row["losers"]),
                        "unchanged": int(row["unchanged"]),
                        "moved_fen": to_fen(float(row["moved"])),
                        "fund_payout_fen": to_fen(float(row["fund_payout"])),
                        "tcm_hospital_share": None if row["tcm_hospital_share"] != row["tcm_hospital_share"]
                        else float(row["tcm_hospital_share"]),
                        # special-case review (特例单议), as the chain ran it: cases applied, approved in expected
                        # value (review.approval_rate), the expected extra paid
                        "review_applied": int(row["review_applied"]),
                        "review_approved": float(row["review_approved"]),
                        "review_amount_fen": to_fen(float(row["review_amount"]))}
    return {"hospitals": hospitals, "pools": pool_rows, "summary": summary}
