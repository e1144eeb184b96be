"""Tiny, randomly initialised vision-language judges, built offline and saved with `save_pretrained`, so that the
transformers backend is tested through the real loading path on a CPU; and a logits processor that makes such a
judge spell a scripted reply, so that scores can be checked exactly end to end.

Needs torch and transformers (the `local-judge` extra). The tokenizer is byte-level with no merges (every UTF-8
byte is a token), made here from nothing, plus each family's special tokens; image processors are told to shrink
images to a few patches. A model is about 0.2 MB of weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

QWEN_SPECIALS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>")
# Qwen2.5-VL-Instruct's own chat template (tokenizer_config.json of Qwen/Qwen2.5-VL-7B-Instruct).
QWEN25_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in "
    "content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Qwen3-VL's template without its tool and reasoning branches (no default system prompt).
QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAVA_SPECIALS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "<image>")
LLAVA_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<image>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def byte_tokenizer(specials: Sequence[str], chat_template: str):
    """A byte-level BPE tokenizer without merges: ids 0..255 are bytes, then the special tokens in order (the
    first is the end-of-turn token, the second the padding token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=specials[0], pad_token=specials[1])
    tokenizer.add_special_tokens({"additional_special_tokens": list(specials[2:])})
    tokenizer.chat_template = chat_template
    return tokenizer


def _text_config(tokenizer, **extra) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16384,
                bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, **extra)


def _qwen_ids(tokenizer) -> dict:
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_SPECIALS}
    return dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])


def _save(model, tokenizer, image_processor, folder: Path, chat_template: str) -> Path:
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(chat_template, "utf-8")
    return folder


def build_qwen25_vl(folder: Path) -> Path:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = byte_tokenizer(QWEN_SPECIALS, QWEN25_VL_TEMPLATE)
    config = Qwen2_5_VLConfig(
        text_config=_text_config(tokenizer, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                             "rope_theta": 10000.0}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        **_qwen_ids(tokenizer))
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    images = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                      temporal_patch_size=2)
    return _save(model, tokenizer, images, folder, QWEN25_VL_TEMPLATE)


def build_qwen3_vl(folder: Path) -> Path:
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = byte_tokenizer(QWEN_SPECIALS, QWEN3_VL_TEMPLATE)
    config = Qwen3VLConfig(
        text_config=_text_config(tokenizer, head_dim=16, rope_parameters={
            "rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True, "rope_theta": 10000.0}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=16,
                           deepstack_visual_indexes=[1]),
        **_qwen_ids(tokenizer))
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    images = Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=64 * 64, patch_size=16, merge_size=2,
                                      temporal_patch_size=2)
    return _save(model, tokenizer, images, folder, QWEN3_VL_TEMPLATE)


def build_llava(folder: Path) -> Path:
    """LLaVA with a Qwen2 text tower and a CLIP vision tower: loads through AutoProcessor without torchvision."""
    import torch
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = byte_tokenizer(LLAVA_SPECIALS, LLAVA_TEMPLATE)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    config = LlavaConfig(
        text_config=dict(model_type="qwen2", **_text_config(tokenizer)),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=28, patch_size=14, projection_dim=32),
        image_token_index=image_token, image_seq_length=4, vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", chat_template=LLAVA_TEMPLATE,
                               num_additional_image_tokens=1)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_lora_adapter(model_folder: Path, folder: Path, seed: int = 1) -> Path:
    """A PEFT LoRA adapter on a tiny judge's attention, with random (not zero) weights, so that merging it changes
    what the judge says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(model_folder))
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(folder))
    return folder


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "qwen2.5-vl": build_qwen25_vl, "qwen3-vl": build_qwen3_vl, "llava": build_llava}


class ScriptedReplies:
    """A transformers LogitsProcessor that makes each sequence of a batch spell the reply `script(request)` chose
    for its request, then the end-of-turn token: every other token's score is set to -inf. The model still runs
    its forward pass on the real inputs; only the choice of the next token is forced."""

    def __init__(self, tokenizer, replies: Sequence[str], prompt_length: int) -> None:
        end = tokenizer.eos_token_id
        self.targets = [tokenizer.encode(reply, add_special_tokens=False) + [end] for reply in replies]
        self.prompt_length = prompt_length
        self.end = end

    def __call__(self, input_ids, scores):
        import torch

        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, float("-inf"))
        for row, target in enumerate(self.targets):
            forced[row, target[step] if step < len(target) else self.end] = 0.0
        return forced
