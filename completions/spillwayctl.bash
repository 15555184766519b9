# bash completion for spillwayctl                          -*- shell-script -*-
# SPDX-License-Identifier: MIT
#
# The candidates come from spillwayctl itself (`spillwayctl __complete
# WORDS... CURRENT`, one per line), so they follow its command table;
# backend names and ban targets are asked from the running daemon (the
# admin socket of a -s on the line, else the default).

_spillwayctl() {
        local cur words cword
        if declare -F _get_comp_words_by_ref >/dev/null; then
                _get_comp_words_by_ref -n =: cur words cword
        else
                cur=${COMP_WORDS[COMP_CWORD]}
                words=("${COMP_WORDS[@]}")
                cword=$COMP_CWORD
        fi
        local IFS=$'\n' c files=0
        local -a cands
        cands=($("${words[0]}" __complete -- "${words[@]:1:cword-1}" "$cur" 2>/dev/null))
        for c in "${cands[@]}"; do
                [ "$c" = "@files" ] && files=1
        done
        if [ $files = 1 ]; then
                compopt -o filenames 2>/dev/null
                COMPREPLY=($(compgen -f -- "$cur"))
        else
                COMPREPLY=($(compgen -W "${cands[*]}" -- "$cur"))
        fi
        # IPv6 targets hold ':', on which bash splits words
        if declare -F __ltrim_colon_completions >/dev/null; then
                __ltrim_colon_completions "$cur"
        fi
}
complete -F _spillwayctl spillwayctl
