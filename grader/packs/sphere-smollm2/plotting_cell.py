num_layers = model.config.num_hidden_layers
frames = []

for layer_idx in range(num_layers):

    projected_values = pcas[layer_idx]

    # PLOTTING CODE DO NOT TOUCH BELOW ===========
    x, y, z = projected_values[0].numpy(), projected_values[1].numpy(), projected_values[2].numpy()

    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(111, projection="3d")

    u = torch.linspace(0, 2 * torch.pi, 100)
    v = torch.linspace(0, torch.pi, 100)
    u, v = torch.meshgrid(u, v, indexing="ij")
    X = torch.cos(u) * torch.sin(v)
    Y = torch.sin(u) * torch.sin(v)
    Z = torch.cos(v)
    ax.plot_surface(X.numpy(), Y.numpy(), Z.numpy(), color="c", alpha=0.1, edgecolor="none")

    ax.scatter(x, y, z, color="b", s=50)
    labels = __LABELS__
    for xi, yi, zi, label in zip(x, y, z, labels):
            ax.text(xi, yi, zi, label, fontsize=10, color="k")

    ax.set_box_aspect([1,1,1])

    fname = f"frame_{layer_idx}.png"
    plt.savefig(fname, dpi=100, bbox_inches="tight")
    frames.append(fname)
    plt.close(fig)

images = [imageio.imread(f) for f in frames]
imageio.mimsave("tokens.gif", images, duration=1.0)
