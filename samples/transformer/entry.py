"""A GPT-style Transformer trained with AdamW on random tokens."""

import torch
import torch.nn.functional as F

from model import TransformerLM

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cuda":
    VOCAB, DIM, HEADS, LAYERS, CONTEXT = 8192, 768, 12, 6, 256
else:
    VOCAB, DIM, HEADS, LAYERS, CONTEXT = 512, 64, 4, 2, 32


def skyline_model_provider():
    return TransformerLM(VOCAB, DIM, HEADS, LAYERS, CONTEXT).to(DEVICE)


def skyline_input_provider(batch_size=16):
    tokens = torch.randint(0, VOCAB, (batch_size, CONTEXT + 1), device=DEVICE)
    return tokens[:, :-1], tokens[:, 1:]


def skyline_iteration_provider(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)

    def iteration(tokens, targets):
        optimizer.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        optimizer.step()

    return iteration
