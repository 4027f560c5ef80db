"""Tests of ntkutils.recorders: each recorder fed by hand, against an independent computation.

``fit``'s records as a whole (steps, agreement with the trained model) are tested in
``test_training.py``.
"""
import math

import pytest
import torch

from ntkutils.networks import build_autoencoder
from ntkutils.recorders import (
    KernelRecorder,
    MetricRecorder,
    SnapshotRecorder,
    WeightRecorder,
)
from ntkutils.training import make_noise_input
from oracles import jacobian_ntk


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_metric_recorder_loss_psnr_and_the_oracle_best_step():
    x = torch.rand(2, 4, 5, generator=gen(0), dtype=torch.float64)
    y = x + 0.1 * torch.randn(2, 4, 5, generator=gen(1), dtype=torch.float64)
    outputs = {0: 0.5 * y, 3: x + 0.02, 6: x + 0.05}  # the best is at step 3
    rec = MetricRecorder([0, 3, 6], y, x=x)
    for t, z in outputs.items():
        rec.record(t, z)
    z3 = outputs[3]
    z3 += 1.0  # the recorder keeps a copy of the best output, not the caller's tensor
    res = rec.result()
    assert res["steps"].tolist() == [0, 3, 6] and res["steps"].dtype == torch.int64
    for i, t in enumerate((0, 3, 6)):
        z = outputs[t] - (1.0 if t == 3 else 0.0)
        assert float(res["loss"][i]) == pytest.approx(0.5 * sum(
            float(v) ** 2 for v in (z - y).reshape(-1)), rel=1e-12)
        mse = float(((z - x) ** 2).mean())
        assert float(res["psnr"][i]) == pytest.approx(10 * math.log10(1 / mse), rel=1e-9)
    assert res["best_step"] == 3 and res["best_psnr"] == float(res["psnr"].max())
    assert torch.allclose(res["best_x_hat"], x + 0.02, rtol=0, atol=1e-15)
    assert rec.postfix() == {"loss": f"{rec.losses[-1]:.4g}", "psnr": f"{rec.psnrs[-1]:.2f}"}


def test_metric_recorder_without_the_clean_image_records_only_the_loss():
    y = torch.ones(1, 2, 2)
    rec = MetricRecorder([5], y)
    rec.record(5, torch.zeros(1, 2, 2))
    res = rec.result()
    assert res["loss"].tolist() == [2.0]
    assert res["psnr"] is None and res["best_step"] is None
    assert res["best_psnr"] is None and res["best_x_hat"] is None
    assert rec.postfix() == {"loss": "2"}


def test_weight_recorder_measures_the_distance_from_the_initial_weights():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.bias.zero_()  # a zero initial tensor: no relative change
    params = dict(net.named_parameters())
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    rec = WeightRecorder([0, 1, 2], params)
    rec.record(0, None)
    with torch.no_grad():
        net.weight[0, 0] += 0.3
        net.bias -= 0.2
    rec.record(1, None)
    with torch.no_grad():
        net.weight[1, 2] -= 0.4
    rec.record(2, None)
    change = rec.result()
    dw, db = net.weight.detach() - w0, net.bias.detach() - b0
    assert change.l2["weight"].tolist() == pytest.approx([0.0, 0.3, 0.5], rel=1e-6)
    assert change.inf["weight"].tolist() == pytest.approx([0.0, 0.3, 0.4], rel=1e-6)
    assert float(change.l2["bias"][-1]) == pytest.approx(float(db.norm()), rel=1e-6)
    assert float(change.l2_rel["weight"][-1]) == pytest.approx(
        float(dw.norm() / w0.norm()), rel=1e-6)
    assert float(change.inf_rel["weight"][-1]) == pytest.approx(
        float(dw.abs().max() / w0.abs().max()), rel=1e-6)
    assert change.l2_rel["bias"].isnan().all() and change.inf_rel["bias"].isnan().all()
    total = math.sqrt(float(dw.norm()) ** 2 + float(db.norm()) ** 2)
    assert float(change.total_l2[-1]) == pytest.approx(total, rel=1e-6)
    assert float(change.total_inf[-1]) == pytest.approx(0.4, rel=1e-6)
    assert float(change.total_l2_rel[-1]) == pytest.approx(total / float(w0.norm()), rel=1e-6)
    assert float(change.total_inf_rel[-1]) == pytest.approx(
        0.4 / float(w0.abs().max()), rel=1e-6)
    assert all(v.dtype == torch.float64 and v.shape == (3,) for v in change.l2.values())


def test_weight_recorder_without_trainable_parameters_records_zeros():
    rec = WeightRecorder([0, 4], {})
    rec.record(0, None)
    rec.record(4, None)
    change = rec.result()
    assert change.l2 == {} and change.total_l2.tolist() == [0.0, 0.0]
    assert change.total_inf.tolist() == [0.0, 0.0] and change.total_l2_rel.isnan().all()


def test_snapshot_recorder_keeps_copies():
    rec = SnapshotRecorder([1, 3])
    z = torch.zeros(1, 2, 2)
    rec.record(1, z)
    z += 1.0  # training goes on in place: the snapshot must not follow
    rec.record(3, z)
    snaps = rec.result()
    assert list(snaps) == [1, 3]
    assert torch.equal(snaps[1], torch.zeros(1, 2, 2)) and torch.equal(snaps[3], z)
    assert snaps[3] is not z


def test_kernel_recorder_is_the_jacobian_ntk_and_leaves_batch_norm_untouched():
    net = build_autoencoder(2, 1, 4, levels=1, generator=gen(0))  # batch norm, training mode
    u = make_noise_input((2, 4, 4), generator=gen(1))
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    means = [m.running_mean.clone() for m in bns]
    rows = torch.tensor([0, 5, 15])
    rec = KernelRecorder([2], net, u, rows=rows)
    rec.record(2, None)
    assert all(m.track_running_stats and int(m.num_batches_tracked) == 0 for m in bns)
    assert all(torch.equal(m.running_mean, mean) for m, mean in zip(bns, means))
    for m in bns:
        m.track_running_stats = False  # so that jacrev may call it
    expect = jacobian_ntk(net, u)[rows]
    assert list(rec.result()) == [2]
    assert torch.allclose(rec.result()[2].double(), expect, rtol=1e-4, atol=1e-6)
