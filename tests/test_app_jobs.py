"""Background jobs of the dashboard server (synapse_core.app.jobs): attach, cancel, failure, sharing."""

from __future__ import annotations

import threading

import pytest

from synapse_core.app.jobs import JobCancelled, JobRegistry, job_key, trained_model_in


def gated_task(gate: threading.Event, total: int = 10, stop_at: int = 4):
    """A task that reports ``stop_at`` of ``total`` items, waits for ``gate``, then finishes or stops if cancelled."""
    calls = []

    def run(job):
        calls.append(job.job_id)
        for i in range(1, stop_at + 1):
            job.report(i, total)
        gate.wait(5)
        if job.cancel_requested():
            raise JobCancelled
        job.report(total, total)
        return {"computed": total}

    return run, calls


def test_a_second_submit_of_a_running_key_attaches_to_the_same_job():
    reg, gate = JobRegistry(), threading.Event()
    task, calls = gated_task(gate)
    first = reg.submit("k", task, kind="test", started_by="ann")
    second = reg.submit("k", task, kind="test", started_by="bob")
    gate.set()
    assert first.wait(5)
    assert second is first and first.attached == ["bob"]
    assert calls == [first.job_id]  # the work ran once


def test_cancel_stops_the_job_and_says_where_and_by_whom():
    reg, gate = JobRegistry(), threading.Event()
    task, _ = gated_task(gate, total=60, stop_at=12)
    job = reg.submit("k", task, kind="test", started_by="ann", unit="synapses")
    while job.done < 12:
        job.wait(0.01)
    assert reg.cancel("k", by="bob") is job
    gate.set()
    assert job.wait(5)
    assert job.status == "cancelled"
    assert job.message() == "cancelled at 12/60 synapses by bob"


def test_a_failed_job_keeps_its_error_message():
    def broken(job):
        job.report(3, 7)
        raise ValueError("bbox2: column Var1 is missing")

    reg = JobRegistry()
    job = reg.submit("k", broken, kind="test", unit="synapses")
    job.wait(5)
    assert job.status == "failed" and job.error == "ValueError: bbox2: column Var1 is missing"
    assert job.message() == "failed at 3/7 synapses: ValueError: bbox2: column Var1 is missing"


def test_a_finished_result_is_shared_with_every_later_submit():
    reg = JobRegistry()
    job = reg.submit("k", lambda job: [1, 2, 3], kind="test")
    job.wait(5)
    again = reg.submit("k", lambda job: pytest.fail("ran twice"), kind="test")
    assert again is job and again.result == [1, 2, 3] and reg.get("k").result == [1, 2, 3]


def test_rerun_done_starts_a_new_job_with_a_new_id():
    reg = JobRegistry()
    first = reg.submit("k", lambda job: 1, kind="test")
    first.wait(5)
    second = reg.submit("k", lambda job: 2, kind="test", rerun_done=True)
    second.wait(5)
    assert second.job_id != first.job_id and second.result == 2


def test_a_cancelled_key_submitted_again_runs_again():
    reg, gate = JobRegistry(), threading.Event()
    task, calls = gated_task(gate)
    job = reg.submit("k", task, kind="test")
    reg.cancel("k", by="ann")
    gate.set()
    job.wait(5)
    again = reg.submit("k", task, kind="test")
    again.wait(5)
    assert (job.status, again.status) == ("cancelled", "done") and len(calls) == 2


def test_jobs_beyond_max_running_wait_queued_and_can_be_cancelled_there():
    reg, gate = JobRegistry(max_running=1), threading.Event()
    task, _ = gated_task(gate)
    running = reg.submit("a", task, kind="test")
    queued = reg.submit("b", task, kind="test")
    while running.status != "running":
        running.wait(0.01)
    assert queued.status == "queued"
    reg.cancel("b", by="ann")
    assert queued.wait(5) and queued.status == "cancelled" and queued.done == 0
    gate.set()
    assert running.wait(5) and running.status == "done"


def test_only_the_last_finished_jobs_are_kept():
    reg = JobRegistry(keep_finished=3)
    for i in range(6):
        reg.submit(f"k{i}", lambda job: None, kind="test").wait(5)
    assert [j.key for j in reg.jobs()] == ["k5", "k4", "k3"]


def test_rate_and_eta_follow_the_reports():
    reg, gate = JobRegistry(), threading.Event()
    job = reg.submit("k", lambda job: gate.wait(5), kind="test", total=100)
    job.report(10, 100)
    job._samples[0] = (job._samples[0][0] - 10.0, 0)  # as if the first report came 10 s before with 0 done
    job.report(10, 100)
    assert job.rate == pytest.approx(1.0, rel=0.01)
    assert job.eta_s == pytest.approx(90.0, rel=0.01)
    assert "10 / 100 items" in job.progress_text() and "ETA 1 min 30 s" in job.progress_text()
    gate.set()


def test_job_key_depends_on_every_part():
    assert job_key("extraction", root="/d", bboxes=["b1"]) == job_key("extraction", bboxes=["b1"], root="/d")
    assert job_key("extraction", root="/d", bboxes=["b1"]) != job_key("extraction", root="/d", bboxes=["b2"])


def test_a_trained_model_name_cannot_leave_the_models_folder(tmp_path):
    assert trained_model_in(tmp_path, "m.pt") == (tmp_path / "models" / "m.pt").resolve()
    with pytest.raises(ValueError, match="not a .pt file of the trained models folder"):
        trained_model_in(tmp_path, "../features/x.pt")


def test_a_burst_of_reports_at_the_start_does_not_inflate_the_rate():
    reg, gate = JobRegistry(), threading.Event()
    job = reg.submit("k", lambda job: gate.wait(5), kind="test", total=100)
    while job.status != "running":
        job.wait(0.01)
    job._samples[0] = (job._samples[0][0] - 20.0, 0)  # the job started 20 s ago
    for done in (1, 2, 3, 4):  # one batch of 4 finished at once
        job.report(done, 100)
    assert job.rate == pytest.approx(4 / 20, rel=0.05)
    gate.set()


# ------------------------------------------------------------------- training as a job (real runs)

#: fmaps 4, 32³ crops averaged to 16³, 2 steps of 8 per epoch on the 15 synapses of one demo bbox.
TINY = {"fmaps": 4, "input_size": 16, "epochs": 3, "batch_size": 8, "warmup_epochs": 1, "projector_dims": (32, 32),
        "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def one_bbox(tmp_path_factory):
    from synapse_core.data.dataset import open_dataset
    from synapse_core.data.demo import write_demo_dataset

    root = write_demo_dataset(tmp_path_factory.mktemp("jobs-demo") / "DATA", seed=0, n_bboxes=1)
    return open_dataset(root, cache_dir=tmp_path_factory.mktemp("jobs-cache"))


def tiny_settings():
    from synapse_core.crops.settings import CropSettings
    from synapse_core.features.train_settings import TrainSettings

    return TrainSettings(crop=CropSettings(size=32), **TINY)


@pytest.mark.slow  # a child process trains a tiny network twice (cancelled, then resumed)
def test_cancelled_training_resumes_from_its_last_finished_epoch(one_bbox, tmp_path):
    from synapse_core.app.jobs import models_dir, submit_training
    from synapse_core.features.checkpoints import read_metadata

    reg, settings = JobRegistry(), tiny_settings()
    job = submit_training(one_bbox, settings, tmp_path, started_by="ann", registry=reg)
    while job.active and len(job.info.get("loss_curve", [])) < 1:  # the first epoch is saved
        job.wait(0.05)
    reg.cancel(job.key, by="bob")
    assert job.wait(120) and job.status == "cancelled", job.message()
    assert job.message().startswith("cancelled at ") and job.message().endswith(" steps by bob")

    again = submit_training(one_bbox, settings, tmp_path, started_by="ann", registry=reg)
    assert again is not job and again.wait(300) and again.status == "done", again.message()
    result = again.result
    assert result["resumed_from"] >= 1 and result["epochs_done"] == 3 and len(result["loss_curve"]) == 3
    path = tmp_path / "models" / result["path"].rsplit("/", 1)[-1]
    assert path.parent == models_dir(tmp_path) and path.is_file()
    assert read_metadata(path)["loss_curve"] == pytest.approx(result["loss_curve"])


@pytest.mark.slow  # opens the dashboard (AppTest)
def test_training_page_offers_the_presets_and_starts_with_nothing_trained(demo_app):
    from app_helpers import open_page

    at = open_page("app_pages/training.py")
    assert at.selectbox(key="t_preset").options == ["small", "full"]
    from synapse_core.features.train_settings import PRESETS

    assert at.number_input(key="t_epochs_small").value == PRESETS["small"]["epochs"] == 30
    assert not at.button(key="t_start").disabled and at.button(key="t_cancel").disabled
    assert any("None yet" in c.value for c in at.caption)
