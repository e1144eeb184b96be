"""Tiny, randomly initialised diffusers image-editing pipelines, built offline and saved with
`save_pretrained`, so that model mode can be tested through the real `from_pretrained` path on a CPU.

Needs the `[model]` extra (torch, diffusers, transformers). Tokenizers are built from a small local vocabulary
(no hub access). Layer sizes follow diffusers' own dummy-component tests.
"""

from __future__ import annotations

from pathlib import Path

_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789#-,."


def _clip_tokenizer(max_length: int = 16):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in _CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _clip_text_encoder(vocab_size: int = 100):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    return CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=2, pad_token_id=1, vocab_size=vocab_size, projection_dim=32))


def build_instruct_pix2pix(folder: Path) -> Path:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=4, attention_head_dim=4)
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, norm_num_groups=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), latent_channels=4)
    pipe = StableDiffusionInstructPix2PixPipeline(
        unet=unet, vae=vae, text_encoder=_clip_text_encoder(), tokenizer=_clip_tokenizer(),
        scheduler=EulerAncestralDiscreteScheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def build_flux_kontext(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, decoder_start_token_id=0))
    tokenizer_2 = T5TokenizerFast(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
                                  + [(c, -1.0) for c in _CHARS + "▁"], extra_ids=0)
    torch.manual_seed(0)
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)
    pipe = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), text_encoder=_clip_text_encoder(), tokenizer=_clip_tokenizer(77),
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer, vae=vae,
        image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(folder)
    return folder


BUILDERS = {"StableDiffusionInstructPix2PixPipeline": build_instruct_pix2pix, "FluxKontextPipeline": build_flux_kontext}
# Generation settings that keep each tiny pipeline at a few milliseconds a row on a CPU.
FAST_CONFIGS = {
    "StableDiffusionInstructPix2PixPipeline": {"num_inference_steps": 2},
    "FluxKontextPipeline": {"num_inference_steps": 2, "height": 16, "width": 16, "max_area": 256,
                            "max_sequence_length": 16, "_auto_resize": False},
}


def main(argv: list[str] | None = None) -> int:
    """`python -m pytest_editeval.testing.tiny_pipelines FOLDER [--class NAME]`: save a tiny random pipeline to
    try model mode on a CPU (README, "Model mode")."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_editeval.testing.tiny_pipelines",
                                     description="save a tiny, randomly initialised diffusers editing pipeline")
    parser.add_argument("folder", type=Path, help="a new (or empty) folder")
    parser.add_argument("--class", dest="class_name", choices=sorted(BUILDERS),
                        default="StableDiffusionInstructPix2PixPipeline", help="the pipeline class")
    args = parser.parse_args(argv)
    if args.folder.exists() and any(args.folder.iterdir()):
        parser.error(f"{args.folder} is not empty: pick a new folder")
    BUILDERS[args.class_name](args.folder)
    config = FAST_CONFIGS[args.class_name]
    print(f"{args.class_name} saved to {args.folder}; generation arguments that keep it fast: "
          f"--editeval-generation-config='{__import__('json').dumps(config)}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
