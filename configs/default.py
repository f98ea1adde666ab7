"""Default config: pix2pix on the embedded procedural facades dataset, sized for a laptop CPU.

Run (2 CPU cores: about 3-6 minutes, samples under WORKDIR/samples/ show recognisable
facades by the end)::

  python -m p2p_jax.main --config=configs/default.py --workdir=/tmp/p2p_default

Every other config imports this one and overrides a few fields; every field can be
overridden on the command line as ``--config.section.field=value``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()

  c.seed = 0  # Seeds parameter init, dropout keys and the data order.
  c.image_size = 64  # Side of the square training crop; the U-Net depth must fit it.
  c.batch_size = 4  # Global batch, split evenly across all local devices.
  # The run's length, the only one: optimisation steps (one D step + one G step each) as an
  # int (1500), or epochs over the train split as a string ('200ep'; an epoch is train
  # pairs // batch_size steps). Rerun with a larger value to resume and train on to it.
  c.num_train_steps = ml_collections.FieldReference(1500, field_type=object)
  c.checkpoint_every_steps = 500  # Orbax checkpoint interval (also saved at the end).
  c.max_checkpoints_to_keep = 3  # Older checkpoints are deleted.
  c.log_every_steps = 50  # Scalar summaries and progress line interval.
  c.sample_every_steps = 250  # PNG sample grid + TensorBoard images interval.
  c.num_sample_images = 4  # Rows in the sample grid (taken from the eval split).
  c.eval_every_steps = 0  # Periodic evaluation on a fixed subset; 0 disables.
  c.num_eval_images = 16  # Size of that fixed subset.
  c.parallelism = 'shard_map'  # 'shard_map' (jit + shard_map, 1-D mesh) or 'pmap'.
  # Train steps fused into one device call (an unrolled lax.scan), same results. This
  # config's steps are short (~50 ms on 2 CPU cores), so per-dispatch costs show: with 2,
  # the training loop ran at 86.5 img/s instead of 66.9 (README, Performance). The
  # intervals above land exactly while they are multiples of it.
  c.steps_per_dispatch = 2
  c.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (params stay float32).

  # --- Data ---------------------------------------------------------------------------
  c.data = d = ml_collections.ConfigDict()
  d.dataset = 'embedded'  # 'embedded', a standard pix2pix dataset name, or 'custom'.
  d.direction = 'BtoA'  # 'AtoB' or 'BtoA'. Embedded/facades: A = photo, B = labels.
  d.data_dir = ''  # tfds data_dir ('' = tfds default, ~/tensorflow_datasets).
  d.manual_dir = ''  # Offline: a downloaded <name>.tar.gz or its extracted folder.
  d.data_path = ''  # Custom paired folder (configs/custom.py).
  d.train_split = 'train'  # Split to train on.
  d.eval_split = 'test'  # Split used for samples and evaluation.
  d.preprocess = 'resize_and_crop'  # Paper jitter; see p2p_jax/data/preprocess.py.
  d.load_size = 72  # Resize to this before the random crop to image_size (paper 286/256).
  d.no_flip = False  # Disable the random horizontal mirror.
  d.max_dataset_size = -1  # Use at most this many training pairs (-1 = all).
  d.shuffle_buffer = 512  # tf.data shuffle buffer (examples).
  d.prefetch = 2  # Batches prefetched to the device.
  d.strict = False  # Stop at the first unreadable image instead of skipping it.
  # Embedded dataset only.
  d.embedded_num_train = 400  # Procedural training pairs (as many as CMP facades).
  d.embedded_num_test = 50  # Procedural test pairs.
  d.embedded_resolution = 72  # Side of the generated images (>= load_size is best).

  # --- Model --------------------------------------------------------------------------
  c.model = m = ml_collections.ConfigDict()
  m.name = 'pix2pix'  # The model: 'pix2pix' or 'cyclegan' (configs/cyclegan_default.py).
  m.generator = 'unet'  # Generator architecture ('unet').
  m.num_downs = 6  # U-Net downsamplings: 8 for 256 px, 7 for 128, 6 for 64.
  m.ngf = 32  # Generator filters in the first layer (paper 64).
  m.g_norm = 'batch'  # 'batch', 'instance' or 'none'.
  m.dropout = 0.5  # Dropout rate in the decoder (paper 0.5); 0 disables it.
  # Where: 'paper' (the three innermost decoder blocks, CD512-CD1024-CD1024) or 'reference'
  # (junyanz/pytorch-CycleGAN-and-pix2pix: one level out, num_downs - 5 blocks).
  m.dropout_placement = 'paper'
  m.discriminator = 'patch'  # 'patch' (n-layer PatchGAN) or 'pixel' (1x1 PixelGAN).
  m.n_layers = 3  # PatchGAN depth: 3 = 70x70, 1 = 16x16, 5 = 286x286 (ImageGAN at 256).
  m.ndf = 32  # Discriminator filters in the first layer (paper 64).
  m.d_norm = 'batch'  # 'batch', 'instance' or 'none'.
  m.init_std = 0.02  # Weights ~ N(0, init_std) (paper 0.02).
  m.sync_batch_stats = True  # BatchNorm statistics over the global batch, not per device.

  # --- Loss ---------------------------------------------------------------------------
  c.loss = l = ml_collections.ConfigDict()
  # 'vanilla' (BCE with logits), 'lsgan', 'hinge' or 'wgangp' (Wasserstein + gradient penalty).
  l.gan_mode = 'vanilla'
  l.lambda_gp = 10.0  # Gradient-penalty weight with gan_mode 'wgangp' (reference 10).
  l.lambda_l1 = 100.0  # Weight of the L1 term (paper 100).
  l.lambda_gan = 1.0  # Weight of G's adversarial term; 0 gives the L1-only ablation.
  l.conditional_d = True  # D sees (input, image); False = unconditional ablation.

  # --- Optimiser ----------------------------------------------------------------------
  c.optim = o = ml_collections.ConfigDict()
  o.lr = 2e-4  # Adam learning rate for G and D (paper 2e-4).
  o.b1 = 0.5  # Adam beta1 (paper 0.5).
  o.b2 = 0.999  # Adam beta2.
  # lr schedule in epochs, fixed by these fields alone (not by num_train_steps): constant
  # for lr_constant_epochs, then linear decay per epoch to 0 over lr_decay_epochs (the
  # reference's --n_epochs / --n_epochs_decay, lr_policy 'linear'); 0 = constant lr.
  o.lr_constant_epochs = 100
  o.lr_decay_epochs = 0

  # --- Sampling and evaluation (--mode=sample / --mode=evaluate) ------------------------
  c.sample = s = ml_collections.ConfigDict()
  s.step = -1  # Checkpoint step to restore (-1 = latest).
  s.input_dir = ''  # Translate this folder instead of the eval split.
  s.image_size = -1  # Translate at this size (-1 = training size); fully convolutional.
  s.num_samples = 1  # Outputs per input (> 1 shows the spread from dropout noise).
  s.paper_mode = True  # True: dropout on + test-batch BatchNorm stats (paper).
  s.seed = 0  # Seed for sampling noise.
  s.max_images = -1  # Translate at most this many inputs (-1 = all).
  s.output_dir = ''  # '' = WORKDIR/translated/step_<N>.
  s.batch_size = 1  # Images per generator call (paper: 1, BatchNorm = instance norm).
  s.direction = 'both'  # CycleGAN: 'AtoB' (G_A), 'BtoA' (G_B) or 'both'; pix2pix has one G.

  # --- Reference PyTorch generator (--mode=import_torch; docs/pretrained.md) ------------
  c.import_torch = it = ml_collections.ConfigDict()
  it.path = ''  # Reference generator .pth: U-Net -> pix2pix; ResNet (G_A, horse2zebra) -> CycleGAN.
  it.direction = 'AtoB'  # CycleGAN: the way `path` translates (AtoB: G_A, BtoA: G_B).
  it.path_b = ''  # CycleGAN, optional: the other direction's generator (*_net_G_B.pth).

  # --- FCN-score segmenter (--mode=train_segmenter; trained on first evaluate) -----------
  c.fcn = f = ml_collections.ConfigDict()
  f.features = (16, 32, 64, 128)  # Segmenter U-Net widths per level.
  f.num_steps = 800  # Training steps (thousands for 256 px facades/cityscapes).
  f.batch_size = 8  # Real photos per segmenter step.
  f.lr = 2e-3  # Adam learning rate.
  f.seed = 0  # Segmenter init and data order.
  f.cache_dir = ''  # '' = <data_dir or $TFDS_DATA_DIR or ~/.cache>/p2p_jax/segmenters/.

  return c
