# SPDX-License-Identifier: MIT
#
# fish completion for spillwayctl. The candidates come from spillwayctl
# itself (`spillwayctl __complete WORDS... CURRENT`, one per line); backend
# names and ban targets are asked from the running daemon.

function __spillwayctl_candidates
        set -l words (commandline -opc)
        set -l cur (commandline -ct)
        set -l out (command $words[1] __complete -- $words[2..-1] "$cur" 2>/dev/null)
        if contains -- @files $out
                __fish_complete_path "$cur"
        else
                printf '%s\n' $out
        end
end

complete -c spillwayctl -f -a '(__spillwayctl_candidates)'
