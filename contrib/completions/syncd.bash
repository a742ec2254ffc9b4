# bash completion for syncd                                   -*- shell-script -*-
#
# Install (either one):
#   mkdir -p ~/.local/share/bash-completion/completions
#   cp contrib/completions/syncd.bash ~/.local/share/bash-completion/completions/syncd
# or add to ~/.bashrc:
#   source /path/to/contrib/completions/syncd.bash
#
# Static on purpose: nothing runs Python at completion time. Keep it in step with
# build_parser() in syncd/cli.py; tests/unit/test_completions.py compares the two.
# Needs only bash (not the bash-completion package).

_syncd_files() {
    # Files and folders (for --config and --only).
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$1"))
}

_syncd_notes() {
    # Notes (*.md, *.markdown) and folders (to descend into, or to name a whole folder).
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=(
        $(compgen -d -- "$1")
        $(compgen -f -X '!*.[mM][dD]' -- "$1")
        $(compgen -f -X '!*.[mM][aA][rR][kK][dD][oO][wW][nN]' -- "$1")
    )
}

_syncd() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}

    local common="-h --help --config --json -v --verbose -q --quiet"
    local commands="sync status run start stop doctor pull cache remote gc verify install-service
        rewrite localize adopt retry items config pause resume watch"
    local states="pending uploading uploaded failed removed"
    # Options that take a value (the next word, or after "=").
    local with_value="--config|--only|--state|--limit|--max-size|--max-pages|--page-size|--grace-days|--instance"

    # `--opt=value`: bash splits it into `--opt` `=` `value` (COMP_WORDBREAKS has "=").
    local opt=$prev
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
        opt=${COMP_WORDS[COMP_CWORD - 2]}
    fi
    case $opt in
        --config | --only)
            _syncd_files "$cur"
            return
            ;;
        --state)
            COMPREPLY=($(compgen -W "$states" -- "$cur"))
            return
            ;;
        --limit | --max-size | --max-pages | --page-size | --grace-days)
            COMPREPLY=()
            return
            ;;
    esac

    # The command, and for cache/remote/config the action, typed so far.
    local i word cmd= action=
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == @($with_value) ]]; then
            [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
            ((i++))
        elif [[ $word == -* || $word == = ]]; then
            :
        elif [[ -z $cmd ]]; then
            cmd=$word
        elif [[ -z $action && ($cmd == cache || $cmd == remote || $cmd == config) ]]; then
            action=$word
        fi
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$common --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts= words= notes=
    case $cmd in
        sync) opts="--once --dry-run --only" ;;
        status | run | start | stop | doctor | pause | resume | watch) ;;
        install-service) opts="--instance" ;;
        pull) ;; # KEY...: object keys or URLs, nothing to complete
        cache)
            case $action in
                "") words="stats clear prune" ;;
                prune) opts="--max-size" ;;
                stats | clear) ;;
                *) return ;;
            esac
            ;;
        config)
            case $action in
                "") words="example path" ;;
                example | path) ;;
                *) return ;;
            esac
            ;;
        remote)
            case $action in
                "") words="index ls" ;;
                index) opts="--max-pages --page-size" ;;
                ls) ;;
                *) return ;;
            esac
            ;;
        gc) opts="--delete --force --shared --grace-days" ;;
        verify) opts="--repair" ;;
        rewrite) opts="--dry-run" notes=1 ;;
        localize) opts="--all --dry-run" notes=1 ;;
        adopt) opts="--dry-run" notes=1 ;;
        retry) opts="--all-failed" ;; # ID...: item ids, see `syncd items`
        items) opts="--state --limit" ;;
        *) return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$common $opts" -- "$cur"))
    elif [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    elif [[ -n $notes ]]; then
        _syncd_notes "$cur"
    fi
}

complete -F _syncd syncd
