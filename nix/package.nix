# The wrapix binary (with wrapix-init and wrapix-serve) from Cargo.lock.
{
  lib,
  stdenv,
  rustPlatform,
  makeWrapper,
  bubblewrap,
  passt,
  iproute2,
  util-linux,
  openssh,
  pkg-config,
  sqlite,
}:
let
  manifest = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = "wrapix";
  version = manifest.workspace.package.version;
  src = lib.cleanSource ../.;
  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [
    "-p"
    "wrapix-cli"
  ];
  # The tests start sandboxes (user namespaces, podman), which the Nix build sandbox cannot.
  doCheck = false;
  nativeBuildInputs = [ makeWrapper ] ++ lib.optionals stdenv.isDarwin [ pkg-config ];
  # macOS: rusqlite links SQLite instead of compiling it in (crates/wrapix-manager/Cargo.toml).
  buildInputs = lib.optionals stdenv.isDarwin [ sqlite ];
  # Linux: the runtime helpers of the default backend (scripts/install-deps.sh's list).
  postFixup = lib.optionalString stdenv.isLinux ''
    wrapProgram $out/bin/wrapix --suffix PATH : ${
      lib.makeBinPath [
        bubblewrap
        passt
        iproute2
        util-linux
        openssh
      ]
    }
  '';
  meta = {
    description = "Run an AI coding agent in a sandbox";
    mainProgram = "wrapix";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
