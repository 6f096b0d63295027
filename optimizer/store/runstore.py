"""A run folder (local or s3://) and the typed records in it, written and read in this one place.

    <output>/<name>/<run-id>/
      experiment.yaml       the experiment as submitted
      run.json              RunMeta (written first, and whenever the status changes)
      targets.csv           TargetRow per target
      trajectories.csv      WorldStep per world and step, flat (plate k >= 1: suffix _k)
      trajectories.parquet  the same, nested
      winner_scene/         scene.xml + meshes with the plates mounted
      heatmaps/, report.html, report.md
      checkpoints/          Ray Tune storage (per-world WorldState)
      lease.json            the driver that owns the run while it runs (optimizer.store.lease)
      summary.json          Summary, written LAST: its presence marks a complete run

With an s3:// run the files are staged in a local folder and published at the end (summary.json last);
run.json and experiment.yaml are uploaded as soon as they change.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from optimizer.constants import (CHECKPOINTS_DIR, EXPERIMENT_FILE, RUN_FILE, SUMMARY_FILE, TARGETS_FILE,
                                 TRAJECTORIES_FILE, TRAJECTORIES_PARQUET, TRIAL_DIR_PREFIX, TUNE_EXPERIMENT)
from optimizer.errors import ConfigError, ReflectoptError, StorageError
from optimizer.records import RunMeta, Summary, TargetRow, WorldStep
from optimizer.store import storage

STAGING_PREFIX = "reflectopt-run-"
TRIAL_PARAMS_FILE = "params.json"  # Ray Tune's copy of a trial's config, in the trial's folder


class RunStore:
    """One run's folder. `uri` is where it lives; `local` is where files are written first (the folder
    itself for a local run, a staging folder for an s3:// run)."""

    def __init__(self, uri: str, local: Path | None = None):
        self.uri = str(uri).rstrip("/") if storage.is_remote(uri) else str(uri)
        self.remote = storage.is_remote(self.uri)
        self._local = Path(local) if local is not None else (None if self.remote else Path(self.uri))

    @property
    def local(self) -> Path:
        """Where files are written first (an s3:// run's staging folder is made on first use)."""
        if self._local is None:
            self._local = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX))
        return self._local

    # --- creation --------------------------------------------------------------------------------------------
    @staticmethod
    def check_output(output: str, label: str = "output") -> None:
        """Fail fast, writing nothing, when runs cannot be written under `output`: a local path below a
        file or where no folder can be made (ConfigError naming `label`), a bucket that does not exist
        (ConfigError) or a store that does not answer (StoreUnreachable)."""
        fix = "give a writable folder or an s3:// URI"
        if storage.is_remote(output):
            try:
                there = storage.exists(storage.bucket_uri(output))
            except StorageError as err:
                raise type(err)(f"{label}: {err}") from None
            if not there:
                raise ConfigError(f"{label}: {output}: no such bucket; create it or fix the name")
            return
        p = Path(os.path.expanduser(output)).absolute()
        while not p.exists() and p != p.parent:
            p = p.parent
        if not p.is_dir():
            raise ConfigError(f"{label}: {output}: {p} is a file, not a folder; {fix}")
        try:  # a folder made and removed at once: the only sure test (root may write where nothing can be made)
            os.rmdir(tempfile.mkdtemp(prefix=".reflectopt-probe-", dir=p))
        except OSError as err:
            raise ConfigError(f"{label}: {output}: no run folder can be made under {p} ({err.strerror or err}); "
                              f"{fix}") from None

    @classmethod
    def create(cls, output: str, name: str, meta_for: Callable[[RunStore], RunMeta], label: str = "output",
               attempts: int = 5) -> tuple[RunStore, RunMeta]:
        """A new run folder `<output>/<name>/<run-id>`, claimed exclusively by its run.json
        (`meta_for(store)`; a local folder made with exist_ok=False, an S3 run.json by a conditional put): a
        colliding run id is drawn again. Returns the store and the meta written."""
        for _ in range(attempts):
            store = cls(storage.run_uri(output, name, storage.new_run_id()))
            if not store.remote:
                try:
                    Path(store.uri).parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise ConfigError(f"{label}: {output}: cannot create the run folder ({err.strerror or err}); "
                                      "give a writable folder or an s3:// URI") from None
                try:
                    Path(store.uri).mkdir(exist_ok=False)
                except FileExistsError:
                    continue  # the same run id drawn twice
                except OSError as err:
                    raise ConfigError(f"{label}: {output}: cannot create the run folder ({err.strerror or err}); "
                                      "give a writable folder or an s3:// URI") from None
            meta = meta_for(store)
            if store.remote:
                if not storage.create_exclusive(store.join(RUN_FILE), meta.to_json().encode()):
                    continue
                store.local.mkdir(parents=True, exist_ok=True)
                store.path(RUN_FILE).write_text(meta.to_json())
            else:
                store.write_meta(meta)
            return store, meta
        raise StorageError(f"{label}: {output}: no free run id after {attempts} tries")

    @property
    def run_id(self) -> str:
        return self.uri.rstrip("/").split("/")[-1]

    def path(self, name: str) -> Path:
        return self.local / name

    def join(self, name: str) -> str:
        return storage.join(self.uri, name)

    # --- small files written as they change --------------------------------------------------------------------
    def _write_now(self, name: str, text: str) -> None:
        self.local.mkdir(parents=True, exist_ok=True)
        self.path(name).write_text(text)
        if self.remote:
            storage.upload_file(self.path(name), self.join(name))

    def write_experiment(self, text: str) -> None:
        self._write_now(EXPERIMENT_FILE, text)

    def write_meta(self, meta: RunMeta) -> None:
        self._write_now(RUN_FILE, meta.to_json())

    def read_meta(self) -> RunMeta:
        return RunMeta.model_validate_json(self._read(RUN_FILE))

    def read_experiment_text(self) -> str:
        return self._read(EXPERIMENT_FILE)

    def _read(self, name: str) -> str:
        if self._local is not None and (self._local / name).is_file():
            return (self._local / name).read_text()
        if self.remote:
            return storage.read_text(self.join(name))
        raise StorageError(f"{self.join(name)}: no such file")

    def started_experiment(self) -> dict | None:
        """The experiment as its worlds run it (each Tune trial keeps its config, which `resume` restores, in
        `checkpoints/worlds/world-NNN/params.json`): the first world's, or None before any world started."""
        import json

        worlds = storage.join(self.join(CHECKPOINTS_DIR), TUNE_EXPERIMENT)
        for name in storage.list(worlds):
            if not name.startswith(TRIAL_DIR_PREFIX):
                continue
            uri = storage.join(storage.join(worlds, name), TRIAL_PARAMS_FILE)
            try:
                config = json.loads(storage.read_text(uri))
            except (StorageError, ValueError):
                continue
            data = config.get("__world__", config).get("experiment") if isinstance(config, dict) else None
            if isinstance(data, dict):
                return data
        return None

    def exists(self, name: str) -> bool:
        if self._local is not None and (self._local / name).exists():
            return True
        return self.remote and storage.exists(self.join(name))

    @property
    def complete(self) -> bool:
        return self.exists(SUMMARY_FILE)

    # --- results ---------------------------------------------------------------------------------------------------
    def write_targets(self, rows: list[TargetRow]) -> None:
        fields = list(TargetRow.model_fields)
        with open(self.path(TARGETS_FILE), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(fields)
            for r in rows:
                w.writerow([_csv_cell(getattr(r, k)) for k in fields])

    def read_targets(self) -> list[TargetRow]:
        rows = list(csv.DictReader(self._read(TARGETS_FILE).splitlines()))
        return [TargetRow.model_validate({k: _csv_value(v) for k, v in r.items() if k in TargetRow.model_fields})
                for r in rows]

    def write_trajectories(self, steps: list[WorldStep]) -> None:
        plates = max((len(s.pose.plates) for s in steps), default=1)
        cols = WorldStep.flat_columns(plates)
        with open(self.path(TRAJECTORIES_FILE), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for s in steps:
                w.writerow({k: _csv_cell(v) for k, v in s.to_flat().items()})
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [s.model_dump(mode="json") for s in steps]
        table = pa.Table.from_pylist(rows) if rows else pa.table({"world": pa.array([], pa.int64())})
        pq.write_table(table, self.path(TRAJECTORIES_PARQUET))

    def read_trajectories(self) -> list[WorldStep]:
        """Every world's steps, from the Parquet file (or the CSV where there is none)."""
        if self.exists(TRAJECTORIES_PARQUET):
            import pyarrow.parquet as pq

            path = self.path(TRAJECTORIES_PARQUET)
            if not path.is_file():
                storage.download_file(self.join(TRAJECTORIES_PARQUET), path)  # into the staging folder
            return [WorldStep.model_validate(r) for r in pq.read_table(path).to_pylist() if "pose" in r]
        rows = list(csv.DictReader(self._read(TRAJECTORIES_FILE).splitlines()))
        return [WorldStep.from_flat(r) for r in rows]

    def write_summary(self, summary: Summary, name: str = SUMMARY_FILE) -> Path:
        path = self.path(name)
        tmp = Path(str(path) + ".tmp")
        tmp.write_text(summary.to_json())
        tmp.replace(path)
        return path

    def read_summary(self) -> Summary:
        try:
            text = self._read(SUMMARY_FILE)
        except StorageError:
            raise ReflectoptError(f"RESULTS: no {SUMMARY_FILE} in {self.uri}; is the run complete?") from None
        try:
            return Summary.model_validate_json(text)
        except ValueError as err:
            first = str(err).splitlines()[0]
            raise ReflectoptError(f"RESULTS: {self.join(SUMMARY_FILE)} is not a reflectopt summary ({first}); "
                                  "was it written by this version? (`reflectopt schema summary`)") from None

    def publish(self) -> None:
        """An s3:// run: copy the staged folder to the bucket (summary.json last), then drop the staging."""
        if not self.remote:
            return
        storage.publish_run(self.local, self.uri)
        self.discard_staging()

    def discard_staging(self) -> None:
        if self.remote and self._local is not None:
            shutil.rmtree(self._local, ignore_errors=True)
            self._local = None


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    return v


def _csv_value(v: str | None):
    if v is None or v == "":
        return None
    return v
