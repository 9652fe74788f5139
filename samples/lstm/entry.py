"""An LSTM sequence classifier trained with Adam."""

import torch
import torch.nn as nn
import torch.nn.functional as F

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
HIDDEN = 1024 if DEVICE == "cuda" else 128
SEQ_LEN = 64 if DEVICE == "cuda" else 24


class SequenceClassifier(nn.Module):
    def __init__(self, vocab=1000, embed=64, hidden=HIDDEN, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, tokens):
        x = self.embed(tokens)
        outputs, _ = self.lstm(x)
        return self.out(outputs[:, -1])


def skyline_model_provider():
    return SequenceClassifier().to(DEVICE)


def skyline_input_provider(batch_size=32):
    tokens = torch.randint(0, 1000, (batch_size, SEQ_LEN), device=DEVICE)
    labels = torch.randint(0, 5, (batch_size,), device=DEVICE)
    return tokens, labels


def skyline_iteration_provider(model):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def iteration(tokens, labels):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens), labels)
        loss.backward()
        optimizer.step()

    return iteration
