# The code cells of tests/data/softmax-regression-notebook.txt, verbatim except the first
# line's import (the book's `from d2l import torch as d2l`). test_seed_notebook.py checks that
# every other line stands in the notebook and runs this file.
import fmnist as d2l
from torch import nn
import torch

batch_size = 256
# 调用封装好的加载数据集的函数
train_iter, test_iter = d2l.load_data_fashion_mnist(batch_size)

# 分析下数据集
for X, y in train_iter:
    print(type(X)), print(type(y))
    print(X.shape), print(y.shape)
    # y 为实际的类型
    print(y[range(10)])
    break

# 添加一层 输入向量 784 个参数 输出向量 10 个类别
neural_network = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

# 初始化权重
def init_weights(m):
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, std=0.01)

neural_network.apply(init_weights);

# 梯度下降的优化算法
gradient_decent = torch.optim.SGD(neural_network.parameters(), lr=0.1)

print(neural_network.parameters())

# 交叉熵损失函数 -> 
# 注意使用 reduction='none' 来使 log 和 softmax 的 e 进行抵消
loss = nn.CrossEntropyLoss(reduction='none')

neural_network.train()

for i in range(100):
    collector = torch.empty(0)
    for X, y in train_iter:
        # 计算损失
        y_hat = neural_network(X)
        _, y_predict = torch.max(y_hat, dim=1) 
        right_counter = 0
        for i in range(y_predict.shape[0]):
            if y_predict[i].item() == y[i].item():
                right_counter += 1
        collector = torch.cat((collector, torch.tensor([right_counter / y_predict.shape[0]])))
        l = loss(y_hat, y)
        # 梯度清零
        gradient_decent.zero_grad()
        # 反向传播
        lm = l.mean()
        # print(lm)
        lm.backward()
        # 更新参数
        gradient_decent.step()
    print(f'平均预测率 -> {collector.mean()}')
