"""Flash-attention block sizes per pass (pod/flash_blocks.py): the causal tile count of unequal
query and key blocks against brute-force enumeration, and the --flash-blocks grammar."""
from __future__ import annotations

import pytest

from tpusim.errors import InputError
from tpusim.pod.flash_blocks import FlashBlocks, causal_tiles, tiling


def _brute(seq: int, bq: int, bk: int) -> int:
    """Tiles holding at least one (query, key) pair with key <= query, pair by pair."""
    return len({(q // bq, k // bk) for q in range(seq) for k in range(q + 1)})


@pytest.mark.parametrize("seq", [1, 7, 16, 33, 64])
def test_causal_tiles_match_enumeration(seq):
    for bq in range(1, 13):
        for bk in range(1, 13):
            assert causal_tiles(seq, bq, bk) == _brute(seq, bq, bk), (seq, bq, bk)


def test_square_blocks_give_the_triangle_and_full_attention_the_rectangle():
    assert causal_tiles(8192, 1024, 1024) == 8 * 9 // 2
    assert causal_tiles(8192, 1024, 2048) == 1 + 1 + 2 + 2 + 3 + 3 + 4 + 4   # by hand
    assert causal_tiles(8192, 2048, 1024) == 2 + 4 + 6 + 8
    assert tiling(4096, 4096, 1024, 512, causal=False)[2] == 4 * 8
    assert tiling(1000, 1000, 2048, 2048, causal=True) == (1000, 1000, 1, 1)   # clipped


def test_parse_reads_every_key_and_defaults_the_rest():
    fb = FlashBlocks.parse("q=1024,kv=512,kv_compute=256,q_dkv=2048,kv_dkv=512,"
                           "kv_dkv_compute=512,q_dq=2048,kv_dq=512,fused_bwd=0")
    assert fb == FlashBlocks(1024, 512, 256, 2048, 512, 512, 2048, 512, False)
    assert FlashBlocks.parse("q=2048") == FlashBlocks(q=2048)
    assert FlashBlocks() == FlashBlocks.square(1024) and FlashBlocks().fused_bwd
    # an inner compute block not given follows its key block (splash's None)
    assert FlashBlocks.parse("kv=512,kv_dkv=256") == FlashBlocks(
        kv=512, kv_compute=512, kv_dkv=256, kv_dkv_compute=256)
    assert FlashBlocks(q=4096, kv=512, kv_compute=256).clipped(2048) == FlashBlocks(
        2048, 512, 256, *([1024] * 5))


@pytest.mark.parametrize("text, match", [
    ("q=0", "q: got 0; must be a positive integer"),
    ("kv=-512", "kv: got -512"),
    ("q=1.5", "q: got '1.5'"),
    ("block=512", "key of q, kv"),
    ("q", "expected key=value"),
    ("fused_bwd=yes", "fused_bwd: got 'yes'; must be 0 or 1"),
    ("q=512,q=1024", "given twice"),
    ("kv=512,kv_compute=384", "kv_compute: got 384; must divide kv = 512"),
])
def test_parse_rejects_bad_input_in_one_line(text, match):
    with pytest.raises(InputError, match=match) as e:
        FlashBlocks.parse(text)
    assert "\n" not in str(e.value) and str(e.value).startswith("--flash-blocks")


def test_cli_train_takes_flash_blocks_and_records_them(cli, tmp_path):
    import json
    args = ("train", "tpu_v5e", "gpt2", "--chips", "8", "--seq", "1024", "--parallel", "fsdp=8")
    code, _, err = cli(*args, "--out", tmp_path / "a", "--flash-blocks", "q=512,fused_bwd=2")
    assert code == 2 and "fused_bwd: got '2'; must be 0 or 1" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()
    # a block the sequence is not a multiple of: the splash kernel refuses it, and so do we
    code, _, err = cli(*args, "--out", tmp_path / "a", "--flash-blocks", "q=384")
    assert code == 2 and "--flash-blocks: q: got 384; must divide the sequence of 1024" in err
    assert not (tmp_path / "a").exists()
    runs = {}
    for name, text in (("fused", None), ("unfused", "q=512,kv=256,fused_bwd=0")):
        extra = ("--flash-blocks", text) if text else ()
        code, _, err = cli(*args, "--out", tmp_path / name, *extra)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "train.json").read_text())
    assert runs["fused"]["flash_blocks"] == {**{k: 1024 for k in (
        "q", "kv", "kv_compute", "q_dkv", "kv_dkv", "kv_dkv_compute", "q_dq", "kv_dq")},
        "fused_bwd": True}
    assert runs["unfused"]["flash_blocks"]["kv_compute"] == 256
    assert not runs["unfused"]["flash_blocks"]["fused_bwd"]
    # the dQ kernel recomputes S and dP: more work, a slower step at the same MFU numerator
    assert runs["unfused"]["step_s"] > runs["fused"]["step_s"]


def test_default_blocks_divide_the_sequence_where_a_block_from_128_to_1024_can():
    # by hand: 1,536 = 2 x 768 (1,024 does not divide it); 3,000 = 3 x 1,000; 6,144 = 6 x 1,024;
    # short sequences are one block; 2,053 is prime: padded 1,024 blocks
    assert [FlashBlocks.for_seq(s).q for s in (1536, 3000, 6144, 768, 1, 2053)] == \
        [768, 1000, 1024, 768, 1, 1024]
    assert FlashBlocks.for_seq(1536) == FlashBlocks.square(768)
    assert FlashBlocks.for_seq(2560).q == 640 and FlashBlocks.for_seq(128 * 17).q == 544
    FlashBlocks.for_seq(1536).check_divides(1536)


def test_train_step_default_runs_dividing_tiles_not_padded_ones():
    """1,536 causal tokens: 768-token tiles run 3 of 2 x 2 tiles (1.77 M scores per head), padded
    1,024 tiles also 3 of 2 x 2 but of 1,024 x 1,024 (3.1 M): the default is the dividing
    tiling, cheaper in both time and executed FLOPs."""
    from tpusim.config import load_config
    from tpusim.importers.llm import custom_config
    from tpusim.pod.sharding import ParallelSpec
    from tpusim.pod.topology import make_slice
    from tpusim.pod.train import train_step
    chip = load_config("tpu_v5e")
    sl = make_slice(chip.ici, chip.dcn, shape="1")
    model = custom_config(name="small", hidden=1024, layers=2, heads=8, kv_heads=8, ffn=4096,
                          vocab=32000, gated=True, act="silu", norm="rmsnorm", positions="rope")
    kw = dict(seq=1536, global_batch=1, remat="none")
    run = {b: train_step(chip, model, sl, ParallelSpec(), **kw,
                         flash=b and FlashBlocks.square(b)) for b in (None, 768, 1024)}
    assert run[None].step_s == run[768].step_s < run[1024].step_s
    assert run[None].hfu * run[None].step_s < run[1024].hfu * run[1024].step_s


def test_causal_tiles_closed_form_matches_the_sum_over_query_blocks():
    # the per-block sum the closed form replaces (min(nk, last row // bk + 1) per query block)
    def by_block(seq, bq, bk):
        nk = -(-seq // bk)
        return sum(min(nk, (min((i + 1) * bq, seq) - 1) // bk + 1) for i in range(-(-seq // bq)))
    for seq in (100, 1536, 4095, 8192, 12_345):
        for bq in (1, 3, 128, 384, 512, 1000, 1024, 2048):
            for bk in (1, 7, 128, 512, 768, 1024, 4096):
                assert causal_tiles(seq, bq, bk) == by_block(seq, bq, bk), (seq, bq, bk)
    # a sequence of 10^11 tokens in 1,024-blocks: the triangle n (n + 1) / 2 of n = 97,656,250
    # blocks (plus the padded last one), without a loop over them
    n = -(-10**11 // 1024)
    assert causal_tiles(10**11, 1024, 1024) == n * (n + 1) // 2


def test_blocks_not_given_keep_the_sequences_default(cli, tmp_path):
    import json
    # 1,536 tokens: the default blocks are 768 (1,024 does not divide it); q=512 given alone
    # leaves the others at 768, and train.json records the blocks that ran, clipped to --seq
    args = ("train", "tpu_v5e", "custom", "--hidden", "256", "--layers", "2", "--heads", "4",
            "--vocab", "1000", "--chips", "8", "--parallel", "fsdp=8")
    code, _, err = cli(*args, "--seq", "1536", "--out", tmp_path / "a", "--flash-blocks", "q=512")
    assert code == 0, err
    got = json.loads((tmp_path / "a" / "train.json").read_text())["flash_blocks"]
    assert got["q"] == 512 and got["kv"] == got["q_dq"] == 768
    # an inner block checked against the sequence's key block (768), not the class default
    code, _, err = cli(*args, "--seq", "1536", "--out", tmp_path / "c", "--flash-blocks",
                       "kv_compute=384")
    assert code == 0, err
    assert FlashBlocks.parse("q=512", base=FlashBlocks.for_seq(1536)) == FlashBlocks(
        512, *([768] * 7))
    code, _, err = cli(*args, "--seq", "256", "--out", tmp_path / "b", "--flash-blocks", "q=2048")
    assert code == 0, err
    got = json.loads((tmp_path / "b" / "train.json").read_text())["flash_blocks"]
    assert {v for k, v in got.items() if k != "fused_bwd"} == {256}
