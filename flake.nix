{
  description = "wrapix: run an AI coding agent in a sandbox";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "aarch64-darwin"
      ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      libFor =
        pkgs:
        import ./nix/lib.nix {
          inherit pkgs;
          wrapix = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
    in
    {
      packages = forAll (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      # The names the original's users run: `nix run github:…#wrapix-rust`.
      apps = forAll (
        pkgs:
        let
          l = libFor pkgs;
          sandbox = args: (l.mkSandbox args).app;
        in
        {
          default = self.apps.${pkgs.stdenv.hostPlatform.system}.wrapix;
          wrapix = sandbox { };
          wrapix-rust = sandbox { profile = l.profiles.rust; };
          wrapix-python = sandbox { profile = l.profiles.python; };
          wrapix-debug = sandbox { mcp.tmux-debug = { }; };
        }
      );

      # As the original: `inputs.wrapix.legacyPackages.${system}.lib.mkSandbox { … }`.
      legacyPackages = forAll (pkgs: {
        lib = libFor pkgs;
      });
      # And `wrapix.lib.mkSandbox { pkgs = …; … }` for flakes that pass their own nixpkgs.
      lib = {
        mkSandbox = { pkgs, ... }@args: (libFor pkgs).mkSandbox (removeAttrs args [ "pkgs" ]);
        mkRalph = { pkgs, ... }@args: (libFor pkgs).mkRalph (removeAttrs args [ "pkgs" ]);
        inherit (import ./nix/config.nix) profiles;
      };

      nixosModules.default = import ./nix/modules/wrapix.nix self;
      nixosModules.manager = import ./nix/modules/manager.nix self;
      homeManagerModules.notifyd = import ./nix/modules/notifyd.nix self;
    };
}
