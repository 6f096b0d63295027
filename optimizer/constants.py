"""Names and numbers shared by more than one room: file names, environment variables, physics and search
defaults, exit codes. A constant used by one module alone stays in that module (e.g. KubeRay's name limits
in `optimizer.kube.objects`)."""

import math

# --- physics -------------------------------------------------------------------------------------
SPEED_OF_LIGHT_M_S = 299_792_458.0  # [m/s]
EPSILON_0_F_M = 8.8541878128e-12  # vacuum permittivity [F/m]
DB_PER_NEPER_POWER = 10.0 / math.log(10.0)  # 10*log10(e): converts ln(power) to dB [dB]
BOLTZMANN_J_K = 1.380649e-23  # [J/K]
NOISE_TEMPERATURE_K = 290.0  # [K] the reference temperature of kTB (-174 dBm/Hz)

# --- Mitsuba / Dr.Jit variants ----------------------------------------------------------------------
VARIANT_CPU = "llvm_ad_mono_polarized"
VARIANT_GPU = "cuda_ad_mono_polarized"
DEFAULT_LIBLLVM_PATH = "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1"  # Debian/Ubuntu package libllvm19
LLVM_ALIGN_BYTES = 64  # [bytes] host arrays handed to Dr.Jit start on this boundary (its own allocations do): a
# mapped numpy buffer off it gets `align 1` loads, a different kernel per alignment pattern, compiled anew

# --- reflector plate ------------------------------------------------------------------------------
PLATE_OBJECT_NAME = "reflectopt-plate"
PLATE_MATERIAL_NAME = "reflectopt-plate-material"
# The plate model of the truth when an experiment names none (`solver.plate_model`)
PLATE_MODEL_DEFAULT = "po"
# Physical optics keeps a single-bounce plate path whose specular point lies off the plate while its PO
# power factor |F|^2 is within this range of the plate's best for the same legs (specular point at its
# centre) [dB]
PO_OFF_PLATE_RANGE_DB = 30.0
# Where a plate is parked when a scene must be evaluated "without" it (far below the floor) [m]
PLATE_PARKING_Z_M = -1.0e4
# Two plates closer than this overlap (`optimizer.physics.overlap`): such a joint pose is rejected [m]
PLATE_CLEARANCE_M = 0.02
# The wall behind a plate (`optimizer.physics.wall`): a scene face is a wall when it is vertical to within
# WALL_VERTICAL_TOL_DEG, at least WALL_MIN_AREA_M2 large and within WALL_SEARCH_M of the mounting box's centre;
# with a yaw range narrower than 180 deg, its plane is within WALL_MAX_ANGLE_DEG of the plate at the range's
# middle. Faces of one object within WALL_COPLANAR_M of its plane (and 1 deg of its normal) are the same wall.
WALL_VERTICAL_TOL_DEG = 10.0
WALL_MIN_AREA_M2 = 1.0
WALL_SEARCH_M = 5.0
WALL_MAX_ANGLE_DEG = 60.0
WALL_COPLANAR_M = 0.05
# `winner.mount` figures are rounded to these (the mounting tolerance's resolution): [m], [deg]
MOUNT_ROUND_M = 0.01
MOUNT_ROUND_DEG = 0.5
MOUNT_ROUND_LATLON_DIGITS = 7  # winner.mount's lat/lon: 1e-7 deg is at most 1.1 cm

# --- surrogate model ------------------------------------------------------------------------------
# Edge width = factor * first Fresnel-zone radius; the factor anneals geometrically start -> end.
EDGE_FACTOR_START = 2.0
EDGE_FACTOR_END = 0.15
EDGE_WIDTH_MIN_M = 1.0e-3  # [m] floor on any edge width (avoids division by ~0)
# With the PO aperture (plate_model po), beyond this many Fresnel radii outside the plate's edges the
# surrogate's PO level is held and its log-sigmoid pull takes over
SURROGATE_PULL_MARGIN_FRESNEL = 1.5
OCCLUSION_PENALTY_DB = 20.0  # [dB] per blocked leg (Tx->plate, plate->target), detached
RAY_EPSILON_M = 1.0e-3  # [m] offset for ray tests that start/stop on a surface

# --- experiment limits (what a physical experiment can hold; anything else is a config error) ---------
POSITION_LIMIT_M = 1.0e6  # [m] every coordinate (transmitters, bounds, targets, poses) within +-this
TX_POWER_DBM_RANGE = (-50.0, 90.0)  # [dBm]
FREQUENCY_HZ_RANGE = (1.0e8, 3.0e11)  # [Hz] 100 MHz .. 300 GHz
MAX_BAND_FREQUENCIES = 16  # entries of a frequency_hz list (a band): each one costs a truth solve
ANGLE_LIMIT_DEG = 360.0  # [deg] yaw and pitch values within +-this
# --- antennas (optimizer.physics.antenna) ---
ANTENNA_DEFAULT_PATTERN = "iso"  # any name in Sionna's antenna pattern registry
ANTENNA_DEFAULT_POLARIZATION = "V"  # V, H, VH or cross (Sionna's polarization registry)
NOISE_FIGURE_DB_DEFAULT = 7.0  # [dB] objective.noise_figure_db (combine: sinr)
BANDWIDTH_HZ_LIMIT = 1e10  # [Hz] objective.bandwidth_hz up to this
MAX_TARGETS = 10_000  # explicit points and region grid together
# A target this far outside the bounding box of the scene's geometry gets a warning; one farther away than
# the scene is wide, or below its lowest surface (the ground), is refused (optimizer.search.driver.check_targets)
TARGET_OUTSIDE_MARGIN_M = 10.0  # [m]
EXPERIMENT_MAX_BYTES = 1024 * 1024  # an experiment file is a few hundred bytes; anything over this is not one

# --- results layout -------------------------------------------------------------------------------
RUN_FILE = "run.json"  # run metadata, written first (what `resume` needs)
LEASE_FILE = "lease.json"  # the driver that owns the run folder (optimizer.store.lease); gone when it ends
SUMMARY_FILE = "summary.json"
TARGETS_FILE = "targets.csv"
EXPERIMENT_FILE = "experiment.yaml"
TRAJECTORIES_FILE = "trajectories.csv"
TRAJECTORIES_PARQUET = "trajectories.parquet"  # the same steps, nested (one plate list per pose)
WINNER_SCENE_DIR = "winner_scene"
HEATMAPS_DIR = "heatmaps"
CHECKPOINTS_DIR = "checkpoints"
WORLD_STATE_FILE = "world_state.json"  # inside each Tune checkpoint
TUNE_EXPERIMENT = "worlds"  # Tune's experiment folder under CHECKPOINTS_DIR
TRIAL_DIR_PREFIX = "world-"  # each world's Tune trial folder in it: world-NNN
REPORT_HTML = "report.html"
MOUNTING_HTML = "mounting.html"  # one printable page: the plate on its wall (plan + side view), `winner.mount`
REPORT_MD = "report.md"

# --- environment variables ------------------------------------------------------------------------
ENV_DEVICE = "REFLECTOPT_DEVICE"  # auto | cpu | cuda
ENV_GPU_PER_WORLD = "REFLECTOPT_GPU_PER_WORLD"  # set by the Helm chart; default of resources.gpu_per_world
ENV_CPU_PER_WORLD = "REFLECTOPT_CPU_PER_WORLD"
ENV_CACHE_DIR = "REFLECTOPT_CACHE_DIR"  # content-addressed scene cache
ENV_LIBLLVM = "DRJIT_LIBLLVM_PATH"
ENV_RAY_ADDRESS = "RAY_ADDRESS"
ENV_S3_ENDPOINT = "AWS_ENDPOINT_URL"
ENV_FAULT_KILL_WORLD = "REFLECTOPT_FAULT_KILL_WORLD"  # test hook: "<world>:<step>:<marker-file>" kills it once
ENV_CHART_DIR = "REFLECTOPT_CHART_DIR"  # the Helm chart folder, for an installed (non-editable) package
ENV_CRD_DIR = "REFLECTOPT_CRD_DIR"  # the vendored KubeRay CRDs, likewise

# --- exit codes -----------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): checkpoints kept, run.json interrupted
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM; Kubernetes deleting or evicting a pod): the same, otherwise

# --- object storage -------------------------------------------------------------------------------
S3_SCHEME = "s3://"
# Every S3 call (Ray Tune's checkpoints included: optimizer.store.tunefs) retries transient errors (connection
# refused or reset, timeouts, 5xx, throttling) with exponential backoff for this long: an outage shorter than
# this is survived; a longer one fails the run with one line, resumable once the store is back.
S3_RETRY_S = 180.0  # [s]
S3_BACKOFF_BASE_S = 0.5  # [s] first backoff; doubles per retry (with jitter), capped below
S3_BACKOFF_MAX_S = 10.0  # [s]
S3_CONNECT_TIMEOUT_S = 10.0  # [s]
S3_READ_TIMEOUT_S = 60.0  # [s]
S3_MULTIPART_THRESHOLD_BYTES = 64 * 1024 * 1024  # larger uploads/downloads go multipart
ENV_S3_RETRY = "REFLECTOPT_S3_RETRY_S"  # overrides S3_RETRY_S
ENV_S3_ATTEMPTS = "REFLECTOPT_S3_ATTEMPTS"  # optional cap on the tries per call (default: as many as S3_RETRY_S allows)
ENV_S3_BACKOFF = "REFLECTOPT_S3_BACKOFF_S"  # overrides S3_BACKOFF_BASE_S
SCENE_BUNDLE_ARCHIVE = "bundle.tar.gz"  # `scene push` writes <uri>/bundle.tar.gz, then <uri>/bundle.json
SCENE_BUNDLE_MANIFEST = "bundle.json"
SCENE_FILE = "scene.xml"
SITE_FILE = "site.json"  # next to scene.xml in a bundle imported from a map (optimizer.sites.record)
SITE_GEOJSON = "site.geojson"  # in a run folder whose scene has site.json: the site in latitude/longitude
SITE_KML = "site.kml"  # the same as KML (optimizer.sites.export)
BUILTIN_SCENE_PREFIX = "builtin:"  # `scene: builtin:NAME` names a scene shipped with Sionna RT
SCENE_MAX_UNPACKED_BYTES = 2 * 1024**3  # [bytes] safe-extraction limit on a bundle's unpacked size
SCENE_CACHE_DEFAULT = "~/.cache/reflectopt/scenes"  # when REFLECTOPT_CACHE_DIR is unset
SCENE_LOCK_TIMEOUT_S = 1800.0  # [s] a world waits this long for another world's download of a bundle

# --- reported numbers -----------------------------------------------------------------------------
# [dBm] stands in for "no path" (-inf) inside rankings and soft-mins only; never reported: a target no
# path reaches is null in JSON and "no path" in tables
NO_PATH_FLOOR_DBM = -200.0
# With a size catalogue (sizes_m), a world whose best truth covers every target scores this much per size
# rank above the ones that do not (smaller plates more): far above any spread of min RSS [dBm] values.
SIZE_RANK_BONUS_DB = 1000.0
P5_PERCENTILE = 5.0  # [%] the "P5" statistic; also the default `p` of `objective.kind: percentile`
SOFT_QUANTILE_BISECTIONS = 60  # bisections of the percentile objective's soft quantile (to ~1e-16 of its bracket)
# `objective.kind: coverage`: the score spans this many dB-like units from no target covered to all (below
# SIZE_RANK_BONUS_DB), and the worst covered target's margin m [dB] adds m / (m + COVERAGE_MARGIN_SCALE_DB) of a target
COVERAGE_SCORE_SPAN_DB = 500.0
COVERAGE_MARGIN_SCALE_DB = 10.0
COVERAGE_MODEL_SCALE = 100.0  # the coverage objective's model value: percent of the focus targets (sigmoid count)
ADAM_BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8
WARMUP_LR_FRACTION = 0.3  # the first Adam update uses this fraction of the learning rate
LR_END_FRACTION = 0.1  # cosine decay of the learning rate to this fraction by the last step
SPSA_C0 = 0.05  # SPSA perturbation size on the unit-cube pose
INFORMED_CANDIDATES_PER_WORLD = 48  # candidate poses ray-tested per informed start

# --- report ---------------------------------------------------------------------------------------
RADIO_MAPS_FILE = "radio_maps.npz"  # in HEATMAPS_DIR: x, y cell centres [m], baseline/winner [dBm], gain [dB]
RADIO_MAPS_GEOTIFF = "radio_maps.tif"  # in HEATMAPS_DIR where the scene has site.json (optimizer.sites.geotiff)
PNG_RADIO_MAP_BASELINE = "radio_map_baseline.png"
PNG_RADIO_MAP_WINNER = "radio_map_winner.png"
PNG_RADIO_MAP_GAIN = "radio_map_gain.png"
PNG_TRAJECTORIES = "trajectories.png"
PNG_CONVERGENCE = "convergence.png"
PNG_RSS_CDF = "rss_cdf.png"
PNG_COLLATERAL = "collateral.png"  # the loss over the cells covered without the plate, collateral cells marked
COLLATERAL_MARGIN_DB = 1.5  # [dB] a covered cell falling below the threshold is lost to the plate only if it
# loses more than this: smaller drops are within the radio maps' sampling noise (benchmarks/collateral_noise.py)
# objective.protect (optimizer.objectives.protect): a protected point is lost by the rule of the collateral cells
# above (covered without the plate, not with it, losing more than protect.max_loss_db, default the margin above)
PROTECT_MAP_SPACING_M = 4.0  # [m] protect.max_area_m2 alone: the report's map rectangle sampled at this spacing
PROTECT_PENALTY_PER_DB = 1.0  # the search's penalty [dB of objective] per dB a protected point is predicted to fall
# below what the rule allows (summed over points, soft-plus of width softmin_temperature_db)
PROTECT_SHADOW_FLOOR = 1e-3  # a plate shadowing a point's whole line-of-sight power leaves this share (-30 dB)
PROTECT_BROKEN_RANK_DB = 600.0  # a result that breaks objective.protect ranks this far below one that keeps it
# (more than any kind's score spread, e.g. COVERAGE_SCORE_SPAN_DB; a broken result never earns SIZE_RANK_BONUS_DB)
MAX_TARGET_WEIGHT = 1e6  # targets.weights / area weight: positive, at most this
RADIO_MAP_MAX_CELLS = 100  # cells along the longer side of a radio map
RADIO_MAP_MIN_CELL_M = 0.25  # [m] no finer cells than this
RADIO_MAP_MARGIN_M = 3.0  # [m] around targets, transmitters and the plate box (at least; 5 % of the span)
RADIO_MAP_SAMPLES_PER_TX = 4_000_000  # rays per transmitter and map (two maps per report; ~1 s each on 2 cores)
REPORT_DPI = 110
REPORT_COLOR_COVERED = "#ffffff"  # white disc, black edge: reads on every colour map
REPORT_COLOR_UNCOVERED = "#d50000"
REPORT_COLOR_PLATE = "#ff6d00"
REPORT_COLOR_BUILDING = "#a1887f"  # building footprints: a colour no RSS or gain scale uses
REPORT_COLOR_WINNER = "#ff6d00"
REPORT_COLOR_NEW_PATH = "#1b5e20"  # gain map: cells with no path without the plate and a path with it
GAIN_MAP_LIMIT_DB = 30.0  # [dB] the gain map's fixed colour scale is +-this, in every run
PNG_TOLERANCE = "tolerance.png"
TOLERANCE_MAP_FILE = "tolerance_map.npz"  # in HEATMAPS_DIR: along [m], yaw [deg] offsets, min RSS [dBm], covered
TOLERANCE_MAP_STEPS = (-2.0, -1.0, 0.0, 1.0, 2.0)  # offsets in units of the tolerance, per axis of the picture

# --- free exploration (surrogate only, no truth cost) ---------------------------------------------
EXPLORE_SAMPLES = 48  # candidate poses a world scores with the surrogate when it explores
EXPLORE_SIGMA = 0.25  # their spread around the current pose, as a fraction of the search box per axis
EXPLORE_EVERY = 4  # a world whose last truth leaves a target uncovered explores again every this many steps
EXPLORE_UNTIL = 0.6  # ... until this fraction of its steps
RESIDUAL_CLIP_DB = 10.0  # [dB] the truth correction of a target's surrogate power is clipped to +-this
TRUST_MIN, TRUST_MAX = 1.0 / 16.0, 1.0  # trust-region factor on the learning rate
TRUST_BAD_RATIO, TRUST_GOOD_RATIO = 0.25, 0.75  # actual / predicted gain: shrink below, grow above
TRUST_MIN_PREDICTED_DB = 0.1  # [dB] predicted gains smaller than this say nothing about the model
POLISH_START_TOL, POLISH_MIN_TOL = 4.0, 1.0  # pattern-search step, in mounting tolerances (start, smallest)
# the worst-case polish (optimizer.search.robust): its step in mounting tolerances (start, smallest), doublings
# of a step that screens better, worst box poses each check adds to the active set, and that set's size
ROBUST_START_TOL, ROBUST_MIN_TOL = 4.0, 1.0
ROBUST_EXPANSIONS = 2
ROBUST_ACTIVE, ROBUST_MAX_ACTIVE = 3, 8
ROBUST_MIN_GAIN_DB = 0.01  # [dB] a move must raise the box's worst case by more than this (not the tie-breaks)
# the robust phase (search.robust_phase: halving) screens polish moves at this share of solver.samples_per_src;
# the box that confirms a move is traced at the full count (street corner: within 0.06 dB where the plate
# carries the weakest target, 0.4-1 dB low where weak diffuse paths do; benchmarks/robust_phase.py)
ROBUST_SCREEN_SAMPLES_SHARE = 0.25
# the robust phase's polish stops after a confirmed move that raised the box's worst case by less than this
ROBUST_PHASE_STOP_GAIN_DB = 0.05  # [dB]
NO_GAIN_DB = 0.5  # [dB] a winner that raises the objective by less than this gets a note: the plate hardly helps
# the run's truth budget under halving: worlds x steps world-steps plus ROBUST_RESERVE_ALLOWANCES allowances (one
# allowance: a box check plus search.robust_polish_boxes boxes of polish, what every world spent under
# every_world); the phase is estimated at one allowance plus ROBUST_REFUTE_EVALS per world (a challenger's
# nominal and its first box poses), and the rest of the reserve is given to the search as more steps per world
ROBUST_RESERVE_ALLOWANCES = 1.5
ROBUST_REFUTE_EVALS = 3
ROBUST_FREED_STEPS_MAX_SHARE = 0.5  # the freed steps per world at most this share of search.steps (a small run
# stays small: 2 worlds x 3 steps would otherwise get 37 more steps each)

# --- calibrate: concurrent worlds on the local device (optimizer.search.throughput) ----------------------
CALIBRATE_GROWTH_PER_DOUBLING = 0.10  # worlds.perGpu: the largest count still growing this much per doubling
CALIBRATE_MAX_WORLDS_GPU = 16  # the largest count calibrate tries on a GPU (1, 2, 4, ... up to it)
