"""Request examples for the interactive docs (``/docs``): each one is a valid request that
``tests/service/test_examples.py`` sends, so "Try it out" always starts from something that works.
"""

from __future__ import annotations

from typing import Any


def _ex(summary: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "value": value}


ADVICE: dict[str, dict[str, Any]] = {
    "llm_pretrain": _ex("7B decoder pre-training, 2M tokens per batch", {
        "task": "llm_pretrain", "architecture": "decoder_transformer",
        "param_count": 7_000_000_000, "batch_size": 1024, "seq_len": 2048,
        "dataset_size": 1_000_000_000_000, "dataset_unit": "tokens", "total_steps": 250_000}),
    "encoder_finetune": _ex("RoBERTa-large on a GLUE task, from its published recipe", {
        "task": "encoder_finetune", "architecture": "encoder_transformer",
        "param_count": 355_000_000, "batch_size": 32, "seq_len": 512, "dataset_size": 393_000,
        "epochs": 10, "dropout": 0.1,
        "reference": {"batch_size": 32, "lr": 1e-5, "weight_decay": 0.1, "optimizer": "adamw"}}),
    "cnn": _ex("ResNet-50 on ImageNet at batch 1024", {
        "task": "image_classification_cnn", "architecture": "cnn", "param_count": 25_600_000,
        "batch_size": 1024, "dataset_size": 1_281_167, "epochs": 90,
        "normalization": ["batchnorm"]}),
    "lora": _ex("LoRA fine-tune of a 7B model on a small instruction set", {
        "task": "llm_finetune_peft", "architecture": "decoder_transformer",
        "param_count": 7_000_000_000, "batch_size": 16, "seq_len": 512, "dataset_size": 52_000,
        "epochs": 3, "normalization": ["rmsnorm"]}),
    "lion": _ex("Lion for a 1B decoder (the user's optimizer; LR and decay transferred)", {
        "task": "llm_pretrain", "architecture": "decoder_transformer",
        "param_count": 1_000_000_000, "batch_size": 512, "seq_len": 2048,
        "dataset_size": 100_000_000_000, "dataset_unit": "tokens", "total_steps": 100_000,
        "normalization": ["rmsnorm"], "optimizer": "lion"}),
    "whisper": _ex("A speech encoder-decoder (seq2seq, modality speech: the Whisper row)", {
        "task": "seq2seq", "modality": "speech", "stage": "pretrain",
        "architecture": "encoder_decoder_transformer", "param_count": 244_000_000,
        "batch_size": 256, "dataset_size": 81_600_000, "total_steps": 1_048_576}),
    "dpo": _ex("DPO preference tuning of a 7B SFT model", {
        "task": "llm_preference", "architecture": "decoder_transformer",
        "param_count": 7_000_000_000, "batch_size": 32, "seq_len": 1024, "dataset_size": 61_000,
        "epochs": 3}),
    "vit_finetune": _ex("Fine-tuning a ViT-B (stage finetune)", {
        "task": "vision_transformer", "stage": "finetune", "architecture": "vit",
        "param_count": 86_000_000, "batch_size": 1024, "dataset_size": 1_281_167,
        "epochs": 100}),
}

RANGE_TEST: dict[str, dict[str, Any]] = {
    "digits_cnn": _ex("A CNN with BatchNorm on sklearn's digits (shipped, no download)", {
        "experiment": {"data": {"kind": "digits", "as_images": True},
                       "model": {"kind": "cnn", "channels": [16, 32]}, "batch_size": 64,
                       "seed": 0},
        "config": {"num_steps": 100}, "device": "auto"}),
    "tiny_lm": _ex("A small decoder-only LM on a learnable synthetic sequence task", {
        "experiment": {"data": {"kind": "sequences", "vocab_size": 32, "seq_len": 32,
                                "n_sequences": 512, "seed": 0},
                       "model": {"kind": "transformer", "d_model": 64, "n_layers": 2,
                                 "n_heads": 4, "seq_len": 32, "vocab_size": 32},
                       "batch_size": 32, "seed": 0},
        "config": {"num_steps": 100, "start_lr": 1e-6, "end_lr": 1.0},
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.1}, "device": "auto"}),
}

TRIALS: dict[str, dict[str, Any]] = {
    "default": _ex("AdamW and SGD+momentum around a given LR (warmup+cosine, clip 1.0)", {
        "experiment": {"data": {"kind": "classification", "n_samples": 2048, "n_features": 16,
                                "n_classes": 4, "seed": 0},
                       "model": {"kind": "mlp", "hidden": [64, 64]}, "batch_size": 64,
                       "seed": 0},
        "config": {"steps": 200, "center_lr": 0.003}, "device": "auto"}),
}

SCHEDULE_PREVIEW: dict[str, dict[str, Any]] = {
    "warmup_cosine": _ex("Warmup then cosine to 10 % (O6.4)", {
        "schedule": {"name": "warmup_cosine", "max_lr": 3e-4, "warmup_steps": 2000,
                     "total_steps": 100_000, "min_lr_ratio": 0.1},
        "total_steps": 100_000, "n_points": 20}),
}

DIAGNOSE: dict[str, dict[str, Any]] = {
    "overfitting": _ex("Validation loss rising while training loss falls (W8)", {
        "loss": [2.3, 1.8, 1.4, 1.1, 0.9, 0.7, 0.55, 0.45, 0.36, 0.3, 0.25, 0.2],
        "val_loss": [2.3, 1.9, 1.6, 1.5, 1.45, 1.5, 1.6, 1.7],
        "val_steps": [0, 1, 3, 5, 7, 9, 10, 11], "weight_decay": 0.01}),
}
