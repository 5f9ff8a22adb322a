import torch

from pipeline.models.losses import joints_mse_loss


def test_joints_mse_matches_hand_computation():
    pred = torch.zeros(2, 3, 4, 4)
    target = torch.zeros(2, 3, 4, 4)
    target[0, 1] = 1.0  # one joint of one image is off by 1 everywhere
    w = torch.ones(2, 3)
    # mean over joints of 0.5 * mean over (N, h*w): only joint 1 has error 1 on half the batch
    expected = (0.5 * 0.5) / 3
    assert torch.isclose(joints_mse_loss(pred, target, w), torch.tensor(expected))
    w[0, 1] = 0.0
    assert joints_mse_loss(pred, target, w) == 0.0


def test_joints_mse_gradient_flows_only_through_weighted_joints():
    pred = torch.randn(1, 2, 3, 3, requires_grad=True)
    loss = joints_mse_loss(pred, torch.zeros(1, 2, 3, 3), torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert pred.grad[0, 0].abs().sum() > 0 and pred.grad[0, 1].abs().sum() == 0
