# fish completion for syncd
#
# Install:
#   mkdir -p ~/.config/fish/completions
#   cp contrib/completions/syncd.fish ~/.config/fish/completions/
#
# Static on purpose: nothing runs Python at completion time. Keep it in step with
# build_parser() in syncd/cli.py; tests/unit/test_completions.py compares the two.

function __syncd_path --description 'The syncd command (and cache/remote action) typed so far'
    set -l words (commandline -opc)
    set -e words[1]
    set -l found
    set -l skip 0
    for word in $words
        if test $skip = 1
            set skip 0
            continue
        end
        switch $word
            case --config --only --state --limit --max-size --max-pages --page-size --grace-days --instance
                set skip 1
            case '-*'
            case '*'
                set -a found $word
        end
    end
    switch "$found[1]"
        case cache remote config
            echo $found[1..2]
        case '*'
            echo $found[1]
    end
end

function __syncd_at --description 'True if the command line is at this syncd command (and action)'
    set -l path (__syncd_path)
    test "$path" = "$argv"
end

function __syncd_notes --description 'Notes (*.md, *.markdown) and folders'
    set -l token (commandline -ct)
    for path in $token*
        if test -d $path
            echo $path/
        else if string match -qri '\.(md|markdown)$' -- $path
            echo $path
        end
    end
end

complete -c syncd -f

# Options of every command (and of syncd itself).
complete -c syncd -s h -l help -d 'show help'
complete -c syncd -l config -r -F -d 'config file (default: XDG path)'
complete -c syncd -l json -d 'machine-readable output'
complete -c syncd -s v -l verbose -d 'more log output'
complete -c syncd -s q -l quiet -d 'only warnings'
complete -c syncd -n '__syncd_at' -l version -d 'show the version'

# Commands.
complete -c syncd -n '__syncd_at' -a sync -d 'scan, upload and rewrite now'
complete -c syncd -n '__syncd_at' -a status -d 'queue counts, online state, last error'
complete -c syncd -n '__syncd_at' -a run -d 'the daemon, in the foreground (systemd)'
complete -c syncd -n '__syncd_at' -a start -d 'the daemon, detached (without systemd)'
complete -c syncd -n '__syncd_at' -a stop -d 'stop a daemon started with `syncd start`'
complete -c syncd -n '__syncd_at' -a doctor -d 'check the setup and say how to fix it'
complete -c syncd -n '__syncd_at' -a pull -d 'download the remote images notes use'
complete -c syncd -n '__syncd_at' -a cache -d 'the local object cache'
complete -c syncd -n '__syncd_at' -a remote -d 'the index of the bucket'
complete -c syncd -n '__syncd_at' -a gc -d 'find (and delete) unreferenced objects'
complete -c syncd -n '__syncd_at' -a verify -d 'check that every object the notes link to is in the bucket'
complete -c syncd -n '__syncd_at' -a install-service -d 'install and start the systemd user unit'
complete -c syncd -n '__syncd_at' -a rewrite -d 'point links to uploaded images at their URLs'
complete -c syncd -n '__syncd_at' -a localize -d 'turn URLs back into local image references'
complete -c syncd -n '__syncd_at' -a adopt -d 'copy the web images notes show into the own bucket, and point the links there'
complete -c syncd -n '__syncd_at' -a retry -d 'put failed items back in the queue'
complete -c syncd -n '__syncd_at' -a items -d 'list queued items'
complete -c syncd -n '__syncd_at' -a config -d 'an example config, or where its daemon lives'
complete -c syncd -n '__syncd_at' -a pause -d 'no new uploads until `syncd resume`'
complete -c syncd -n '__syncd_at' -a resume -d 'uploads go on'
complete -c syncd -n '__syncd_at' -a watch -d 'live progress while the queue drains'

# sync
complete -c syncd -n '__syncd_at sync' -l once -d 'in this process, without a daemon'
complete -c syncd -n '__syncd_at sync' -l dry-run -d 'with --once: change nothing'
complete -c syncd -n '__syncd_at sync' -l only -r -F -d 'with --once: only this part of the vault'

# cache stats|clear|prune
complete -c syncd -n '__syncd_at cache' -a stats -d 'files and bytes in the cache'
complete -c syncd -n '__syncd_at cache' -a clear -d 'empty the cache'
complete -c syncd -n '__syncd_at cache' -a prune -d 'least recently used first'
complete -c syncd -n '__syncd_at cache prune' -l max-size -x -d 'e.g. 2G'

# config example|path
complete -c syncd -n '__syncd_at config' -a example -d 'print a commented example config'
complete -c syncd -n '__syncd_at config' -a path -d 'the config file, instance, socket, state'

# remote index|ls
complete -c syncd -n '__syncd_at remote' -a index -d 'list the bucket into the index'
complete -c syncd -n '__syncd_at remote' -a ls -d 'show the index'
complete -c syncd -n '__syncd_at remote index' -l max-pages -x -d 'stop after this many pages'
complete -c syncd -n '__syncd_at remote index' -l page-size -x -d 'objects per page (1000)'

# gc
complete -c syncd -n '__syncd_at install-service' -l instance -x -d 'syncd@NAME for ~/.config/syncd/NAME.toml'
complete -c syncd -n '__syncd_at gc' -l delete -d 'delete them (default: only list)'
complete -c syncd -n '__syncd_at gc' -l force -d 'even if more than half would go'
complete -c syncd -n '__syncd_at gc' -l shared -d 'even if another syncd queue uploads under this prefix (its objects stay)'
complete -c syncd -n '__syncd_at gc' -l grace-days -x -d 'keep younger objects (30 days)'

# verify
complete -c syncd -n '__syncd_at verify' -l repair -d 'upload missing or wrong objects again from local copies'

# rewrite [NOTE...]
complete -c syncd -n '__syncd_at rewrite' -l dry-run -d 'show a diff, change nothing'
complete -c syncd -n '__syncd_at rewrite' -a '(__syncd_notes)'

# localize [NOTE...]
complete -c syncd -n '__syncd_at localize' -l all -d 'every note'
complete -c syncd -n '__syncd_at localize' -l dry-run -d 'show a diff, change nothing'
complete -c syncd -n '__syncd_at localize' -a '(__syncd_notes)'

# adopt [NOTE...]
complete -c syncd -n '__syncd_at adopt' -l dry-run -d 'list them, change nothing'
complete -c syncd -n '__syncd_at adopt' -a '(__syncd_notes)'

# retry [ID...]
complete -c syncd -n '__syncd_at retry' -l all-failed -d 'every failed item (default)'

# items
complete -c syncd -n '__syncd_at items' -l state -x -a 'pending uploading uploaded failed removed' -d 'only this state'
complete -c syncd -n '__syncd_at items' -l limit -x -d 'at most this many (200)'
