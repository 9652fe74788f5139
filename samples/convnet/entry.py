"""A convnet on 32x32 images (CIFAR-sized), trained with SGD + momentum."""

import torch
import torch.nn.functional as F

from model import ConvNet

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
WIDTH = 64 if DEVICE == "cuda" else 16


def skyline_model_provider():
    return ConvNet(width=WIDTH).to(DEVICE)


def skyline_input_provider(batch_size=32):
    images = torch.randn(batch_size, 3, 32, 32, device=DEVICE)
    labels = torch.randint(0, 10, (batch_size,), device=DEVICE)
    return images, labels


def skyline_iteration_provider(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def iteration(images, labels):
        optimizer.zero_grad()
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()

    return iteration
