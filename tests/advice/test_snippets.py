"""Every PyTorch snippet runs: exactly the advised number of steps across several passes over a
tiny loader, with the LR at step 0, at the warmup boundary and on the last step equal to the
advised schedule's, and the decay split honouring no_weight_decay() and learned positions."""

from __future__ import annotations

import math
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from optim_core.advice import AdviceRequest, advise  # noqa: E402
from optim_core.specs.schedule import ScheduleSpecAdapter  # noqa: E402

LOADER_LEN = 7  # batches per pass: every run below takes several passes


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tok = torch.nn.Embedding(11, 8)
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, 4, 8))
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 8))
        self.scale = torch.nn.Parameter(torch.ones(8, 8))  # a 2-D tensor the model exempts
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 3)

    def no_weight_decay(self) -> set[str]:
        return {"scale"}

    def forward(self, ids: Any) -> Any:
        h = self.tok(ids) + self.pos_embed
        h = torch.cat([self.cls_token.expand(len(ids), -1, -1), h], 1) @ self.scale
        return self.head(self.norm(h).mean(1))


def _base(**kw: Any) -> dict[str, Any]:
    return {"param_count": 1_000_000, "batch_size": 4, "dataset_size": 4 * LOADER_LEN, **kw}


CASES = {
    "llm_pretrain/adamw warmup_cosine": _base(task="llm_pretrain", seq_len=4, total_steps=40,
                                             dataset_unit="examples"),
    "encoder_finetune warmup_linear": _base(task="encoder_finetune", seq_len=4, epochs=5),
    "cnn_small/sgd warmup_step": _base(task="image_classification_cnn", epochs=12,
                                       normalization=["batchnorm"]),
    "t5 finetune constant": _base(task="seq2seq", stage="finetune", seq_len=4, total_steps=30,
                                  architecture="encoder_decoder_transformer"),
    "t5 pretrain inverse_sqrt": _base(task="seq2seq", seq_len=4, total_steps=30,
                                      architecture="encoder_decoder_transformer"),
    "qlora linear_warmup": _base(task="llm_finetune_peft", seq_len=4, memory_tight=True,
                                 total_steps=40),
    "lion": _base(task="vision_transformer", epochs=6, optimizer="lion"),
    "lamb": _base(task="encoder_pretrain", seq_len=4, total_steps=25, optimizer="lamb"),
    "lars": _base(task="image_classification_cnn", epochs=5, optimizer="lars",
                  normalization=["batchnorm"]),
    "rmsprop": _base(task="llm_preference", seq_len=4, total_steps=20, optimizer="rmsprop"),
    "adagrad": _base(task="other", epochs=4, optimizer="adagrad"),
    "adam": _base(task="other", epochs=4, optimizer="adam"),
    "adam_l2": _base(task="other", epochs=4, optimizer="adam_l2"),
    "adafactor": _base(task="other", epochs=4, memory_tight=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_snippet_runs_the_advised_steps_and_schedule(case: str) -> None:
    adv = advise(AdviceRequest(**CASES[case]))
    sched = adv.schedule
    torch.manual_seed(0)
    model = Tiny()
    data = [(torch.randint(0, 11, (4, 4)), torch.randint(0, 3, (4,))) for _ in range(LOADER_LEN)]
    ns: dict[str, Any] = {"model": model, "loader": data}
    lrs: list[float] = []

    def loss_fn(m: Any, batch: Any) -> Any:
        lrs.append(ns["optimizer"].param_groups[0]["lr"])
        x, y = batch
        return torch.nn.functional.cross_entropy(m(x), y)

    ns["loss_fn"] = loss_fn
    exec(compile(adv.artefacts.pytorch, f"<snippet {case}>", "exec"), ns)
    total = sched.total_steps
    assert total > LOADER_LEN, "the case must take several passes over the loader"
    assert len(lrs) == total
    fn = ScheduleSpecAdapter.validate_python(sched.spec).build()
    w = sched.warmup_steps
    for t in {0, max(w - 1, 0), total - 1}:
        assert math.isclose(lrs[t], fn(t), rel_tol=1e-9, abs_tol=1e-15), (case, t)
    assert math.isclose(lrs[0], fn(0)) and math.isclose(max(lrs), sched.peak_lr, rel_tol=1e-9)
    assert math.isclose(lrs[-1], sched.min_lr, rel_tol=1e-2, abs_tol=1e-12)
    no_decay = {id(p) for p in ns["no_decay"]}
    for name in ("pos_embed", "cls_token", "scale", "tok.weight", "norm.weight", "head.bias"):
        assert id(model.get_parameter(name)) in no_decay, name
    assert {id(p) for p in ns["decay"]} == {id(model.head.weight)}
