"""Clustering as a background job of the dashboard server (synapse_core.app.jobs): stages, sharing, cancel."""

from __future__ import annotations

import dataclasses

import pytest

from synapse_core.app.jobs import (
    Job,
    JobCancelled,
    JobRegistry,
    clustering_key,
    clustering_task,
    submit_clustering,
)
from synapse_core.cluster.settings import ClusterSettings

#: Small and fast: fixed k, no map, no stability subsamples.
FAST = ClusterSettings(k=3, projection="none", n_stability=0, nan_policy="drop")


def test_a_clustering_job_reports_its_stages_and_returns_the_result(morph_features, tmp_path):
    job = submit_clustering(morph_features, FAST, tmp_path, started_by="ann", registry=JobRegistry())
    assert job.wait(120), job.message()
    assert job.status == "done", job.error
    assert (job.done, job.total, job.unit) == (4, 4, "stages")  # preprocessing, clustering, diagnostics, summary
    assert set(job.result.table["cluster"]) == {0, 1, 2}
    assert {"preprocess_s", "cluster_s", "diagnostics_s", "summary_s"} <= set(job.info)


def test_progress_names_the_stage_and_shows_no_rate_or_eta():
    job = Job(key="k", kind="clustering", unit="stages", show_rate=False, status="running")
    job.report(0, 5, phase="preprocessing")
    job.report(1, 5, phase="k sweep (2–12)")
    job.report(2, 5, phase="map (UMAP)")
    assert job.message() == "running: map (UMAP): 2 / 5 stages"
    assert job.eta_s is None


def test_a_second_user_asking_for_the_same_clustering_gets_the_same_job(morph_features, tmp_path):
    reg = JobRegistry()
    first = submit_clustering(morph_features, FAST, tmp_path, started_by="ann", registry=reg)
    second = submit_clustering(morph_features.copy(), FAST, tmp_path, started_by="bob", registry=reg)
    assert first.wait(120)
    assert second is first and first.attached == ["bob"]


def test_other_settings_features_or_cache_folder_are_other_work(morph_features, tmp_path):
    key = clustering_key(morph_features, FAST, tmp_path)
    assert clustering_key(morph_features, FAST, tmp_path) == key
    assert clustering_key(morph_features, dataclasses.replace(FAST, k=4), tmp_path) != key
    assert clustering_key(morph_features.iloc[:-1], FAST, tmp_path) != key
    changed = morph_features.copy()
    column = next(c for c in changed.columns if c.startswith("morph_"))
    changed.loc[0, column] = changed.loc[0, column] + 1.0  # one value of one synapse
    assert clustering_key(changed, FAST, tmp_path) != key
    assert clustering_key(morph_features, FAST, tmp_path / "other") != key


def test_cancel_stops_the_clustering_after_the_stage_it_is_in(morph_features, tmp_path):
    job = Job(key="k", kind="clustering", unit="stages", show_rate=False)
    report = job.report

    def report_then_cancel(done, total=None, *args, **info):  # the user presses Cancel during preprocessing
        report(done, total, *args, **info)
        if done == 0:
            job._cancel.set()

    job.report = report_then_cancel
    with pytest.raises(JobCancelled):
        clustering_task(morph_features, FAST, tmp_path)(job)
    assert job.done == 1 and "preprocess_s" in job.info and "cluster_s" not in job.info  # no k sweep after it
