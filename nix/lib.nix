# mkSandbox and mkRalph: thin wrappers that give the one wrapix binary a generated wrapix.toml
# (as the user-level config, $WRAPIX_USER_CONFIG). A project's own wrapix.toml still applies,
# and still needs `wrapix trust` to widen the sandbox.
{ pkgs, wrapix }:
let
  config = import ./config.nix;
  wrap =
    {
      name,
      configFile,
      flags ? [ ],
    }:
    pkgs.runCommand name { nativeBuildInputs = [ pkgs.makeWrapper ]; } ''
      makeWrapper ${wrapix}/bin/wrapix $out/bin/${name} \
        --set WRAPIX_USER_CONFIG ${configFile} ${
          pkgs.lib.concatMapStrings (f: " --add-flags ${pkgs.lib.escapeShellArg f}") flags
        }
    '';
in
rec {
  inherit (config) profiles;

  mkSandbox =
    {
      profile ? profiles.base,
      name ? "wrapix",
      ...
    }@args:
    let
      configFile = pkgs.writeText "wrapix.toml" (config.render args);
      package = wrap { inherit name configFile; };
    in
    {
      inherit package profile configFile;
      app = {
        type = "app";
        program = "${package}/bin/${name}";
      };
    };

  mkRalph =
    {
      sandbox ? null,
      profile ? profiles.base,
    }:
    let
      sb = if sandbox != null then sandbox else mkSandbox { inherit profile; };
      ralph = wrap {
        name = "ralph";
        inherit (sb) configFile;
        flags = [ "ralph" ];
      };
    in
    {
      app = {
        type = "app";
        program = "${ralph}/bin/ralph";
      };
      packages = [ ralph ];
      shellHook = "";
    };
}
