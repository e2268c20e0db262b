"""A Llama-style SentencePiece BPE tokenizer in tokenizer.json form, trained with HF `tokenizers`:
<unk> <s> </s>, the 256 byte pieces (byte_fallback), then the learned pieces and merges;
Prepend+Replace normalizer, the ByteFallback decoder chain, BOS by the post-processor.
Used by the tiny test models (tools/fixtures/make_tiny_models.py) and the demo model
(tools/demo/train.py)."""
import json

from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers


def sp_bpe_tokenizer(corpus, vocab_size, specials=()):
    tmp = Tokenizer(models.BPE(unk_token="<unk>"))
    tmp.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tmp.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[],
                                                        show_progress=False))
    m = json.loads(tmp.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(m["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"] + list(specials))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                        special_tokens=[("<s>", 1)])
    return tok
