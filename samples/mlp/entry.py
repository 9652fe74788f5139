"""A multi-layer perceptron classifier: the smallest Skyline entry point."""

import torch
import torch.nn as nn
import torch.nn.functional as F

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WIDTH = 4096 if DEVICE == "cuda" else 512


class MLP(nn.Module):
    def __init__(self, width=WIDTH, classes=10):
        super().__init__()
        self.fc1 = nn.Linear(784, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, classes)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def skyline_model_provider():
    return MLP().to(DEVICE)


def skyline_input_provider(batch_size=64):
    return (
        torch.randn(batch_size, 784, device=DEVICE),
        torch.randint(0, 10, (batch_size,), device=DEVICE),
    )


def skyline_iteration_provider(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def iteration(inputs, targets):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()

    return iteration
