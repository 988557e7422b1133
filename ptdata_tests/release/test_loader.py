"""The PyTorch loader over a release, and a tiny causal LM trained from it on CPU."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from ptdata.release.build import read_megatron_index
from ptdata.release.loader import IGNORE_INDEX, ReleaseDataset
from ptdata_tests.conftest import run
from ptdata_tests.integration.test_gold_assets import D, _config, write_landing


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    import dagster as dg
    import yaml

    from ptdata.core.config import Settings

    home = tmp_path_factory.mktemp("release")
    (home / "ptdata.yaml").write_text(yaml.safe_dump(_config(release={"name": "tiny", "shard_tokens": 2000})))
    settings = Settings(home=home, config_path=home / "ptdata.yaml", lake=str(home / "lake"), engine="local")
    write_landing(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run(settings, instance, D).success
    return home / "lake" / "releases" / "tiny"


class TinyLM(nn.Module):
    """Two transformer layers; attention is causal and kept inside each packed sequence (block diagonal)."""

    def __init__(self, vocab: int, width: int = 32, max_len: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Embedding(max_len, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, 2, 64, dropout=0.0, batch_first=True) for _ in range(2)
        )
        self.head = nn.Linear(width, vocab)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        sequence = torch.cumsum(position_ids == 0, dim=0)
        n = len(input_ids)
        allowed = (sequence[:, None] == sequence[None, :]) & torch.ones(n, n, dtype=torch.bool).tril()
        x = (self.embed(input_ids) + self.position(position_ids))[None]
        for layer in self.layers:
            x = layer(x, src_mask=~allowed)
        return self.head(x)[0]


def _loss(model: TinyLM, item: dict) -> torch.Tensor:
    logits = model(item["input_ids"], item["position_ids"])
    return nn.functional.cross_entropy(logits[:-1], item["labels"][1:], ignore_index=IGNORE_INDEX)


def test_a_tiny_causal_lm_learns_from_the_loader(release):
    torch.manual_seed(0)
    vocab = json.loads((release / "manifest.json").read_text())
    from tokenizers import Tokenizer

    size = Tokenizer.from_file(str(release / "tokenizer.json")).get_vocab_size()
    model = TinyLM(size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = ReleaseDataset(release, "gold_sft", seed=1)
    losses = []
    for epoch in range(8):
        data.set_epoch(epoch)
        for item in data:
            loss = _loss(model, item)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert vocab["name"] == "tiny" and len(losses) >= 16
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.7 * first, (first, last)


def test_the_loss_covers_only_trained_tokens(release):
    rows = pytest.importorskip("pyarrow.parquet").read_table(release / "shards" / "gold_sft-00000.parquet").to_pylist()
    for item, row in zip(ReleaseDataset(release, "gold_sft", shuffle=False), rows, strict=False):
        mask = np.asarray(row["loss_mask"])
        starts = np.cumsum([0, *row["seq_lens"][:-1]])
        expected = set(np.flatnonzero(mask).tolist()) - set(starts.tolist())
        assert set(torch.nonzero(item["labels"] != IGNORE_INDEX).flatten().tolist()) == expected
        trained = item["labels"][item["labels"] != IGNORE_INDEX]
        assert torch.equal(trained, item["input_ids"][item["labels"] != IGNORE_INDEX])
    # and the loss is the mean over exactly those targets
    torch.manual_seed(0)
    model = TinyLM(4096)
    item = next(iter(ReleaseDataset(release, "gold_sft", shuffle=False)))
    logits = model(item["input_ids"], item["position_ids"])[:-1]
    targets = item["labels"][1:]
    keep = targets != IGNORE_INDEX
    by_hand = -torch.log_softmax(logits[keep], dim=-1).gather(1, targets[keep][:, None]).mean()
    assert torch.allclose(_loss(model, item), by_hand)


def test_a_token_never_attends_to_another_sequence_of_its_row(release):
    torch.manual_seed(0)
    model = TinyLM(4096).eval()
    item = next(i for i in ReleaseDataset(release, "gold_sft", shuffle=False) if len(i["seq_lens"]) >= 2)
    first = int(item["seq_lens"][0])
    with torch.no_grad():
        logits = model(item["input_ids"], item["position_ids"])
        scrambled = item["input_ids"].clone()
        scrambled[:first] = torch.randint(0, 4096, (first,))
        again = model(scrambled, item["position_ids"])
    assert torch.allclose(logits[first:], again[first:], atol=1e-5)  # the later sequences did not see the change
    assert not torch.allclose(logits[:first], again[:first])


def test_ranks_workers_and_resume(release):
    full = [tuple(i["input_ids"].tolist()) for i in ReleaseDataset(release, "gold_sft", seed=3)]
    ranks = [
        [tuple(i["input_ids"].tolist()) for i in ReleaseDataset(release, "gold_sft", seed=3, rank=r, world_size=2)]
        for r in range(2)
    ]
    assert sorted(ranks[0] + ranks[1]) == sorted(full) and not set(ranks[0]) & set(ranks[1])
    assert [tuple(i["input_ids"].tolist()) for i in ReleaseDataset(release, "gold_sft", seed=3)] == full
    # resume: stop after 2 rows, save, and a fresh dataset continues where it stopped
    data = ReleaseDataset(release, "gold_sft", seed=3)
    it = iter(data)
    head = [tuple(next(it)["input_ids"].tolist()) for _ in range(2)]
    resumed = ReleaseDataset(release, "gold_sft", seed=3)
    resumed.load_state_dict(data.state_dict())
    assert head + [tuple(i["input_ids"].tolist()) for i in resumed] == full
    # DataLoader workers split the rows without repeating one
    loader = torch.utils.data.DataLoader(ReleaseDataset(release, "gold_sft", seed=3), batch_size=None, num_workers=2)
    assert sorted(tuple(i["input_ids"].tolist()) for i in loader) == sorted(full)


def test_shards_load_with_datasets_and_megatron_files_hold_the_rows(release):
    datasets = pytest.importorskip("datasets")
    manifest = json.loads((release / "manifest.json").read_text())
    files = [str(release / s["file"]) for s in manifest["shards"]["gold_sft"]]
    assert len(files) >= 2  # shard_tokens 2000: the rows are spread over several shards
    loaded = datasets.load_dataset("parquet", data_files=files, split="train")
    assert len(loaded) == sum(p["rows"] for p in manifest["partitions"] if p["table"] == "gold_sft")
    dtype, sizes, pointers = read_megatron_index((release / "megatron" / "gold_sft.idx").read_bytes())
    tokens = np.fromfile(release / "megatron" / "gold_sft.bin", dtype=dtype)
    assert int(sizes.sum()) == len(tokens)
    first = loaded[0]["input_ids"]
    assert tokens[: sizes[0]].tolist() == first and pointers[0] == 0
