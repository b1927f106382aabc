"""Change requests (pull and merge requests) reviewed before they are merged.

* ``compare`` — pure: what a request changes, from the merge base to the head, and what
  the target did meanwhile to the environments it touches;
* ``render`` — pure: a review as JSON data and as Markdown;
* ``review`` — solving both sides of each change (``solvecache`` keeps the answers) and
  checking the head's solves against its policy;
* ``tracking`` — the service's side: open refs, reviews, previews, closing, forgetting;
* ``previews`` — pure: what to build, what to reuse, which preview areas to keep;
* ``check`` — the CI check (``condaops check``, the gate) on a clone, a CI checkout or a URL;
* ``publish`` — the review as one comment and one commit status on the forge.
"""
