//! The expression language: numbers, variables, `+ - * / ^`, unary minus,
//! parentheses and the functions of [`Func`] (`ln(x1) + x1*x2 - sin(x2)`).
//!
//! A shunting-yard parser with explicit stacks: no recursion, so any nesting
//! depth parses (or fails) without exhausting the call stack. Errors carry
//! the character position and what was expected there.

use super::expr::{BinOp, ExprGraph, ExprId, Func, NEG_PRECEDENCE};
use crate::error::Error;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(f64),
    Ident(String),
    Op(char),
    Open,
    Close,
    End,
}

fn describe(t: &Token) -> String {
    match t {
        Token::Num(v) => format!("the number {v}"),
        Token::Ident(s) => format!("'{s}'"),
        Token::Op(c) => format!("'{c}'"),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::End => "the end of the input".into(),
    }
}

fn error(position: usize, message: impl Into<String>) -> Error {
    Error::Parse {
        position,
        message: message.into(),
    }
}

/// Splits `src` into tokens with their character positions.
fn tokenize(src: &str) -> Result<Vec<(usize, Token)>, Error> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let v: f64 = text
                .parse()
                .map_err(|_| error(start, format!("'{text}' is not a number")))?;
            out.push((start, Token::Num(v)));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((start, Token::Ident(chars[start..i].iter().collect())));
            continue;
        }
        let t = match c {
            '+' | '-' | '*' | '/' | '^' => Token::Op(c),
            '(' => Token::Open,
            ')' => Token::Close,
            _ => return Err(error(start, format!("unexpected character '{c}'"))),
        };
        out.push((start, t));
        i += 1;
    }
    out.push((chars.len(), Token::End));
    Ok(out)
}

/// Operators waiting on the stack.
enum Pending {
    Bin(BinOp),
    Neg,
    /// '(' at a position, closing a function call if `Some`.
    Paren(usize, Option<Func>),
}

fn precedence(p: &Pending) -> u8 {
    match p {
        Pending::Bin(op) => op.precedence(),
        Pending::Neg => NEG_PRECEDENCE,
        Pending::Paren(..) => 0,
    }
}

fn apply(g: &mut ExprGraph, operands: &mut Vec<ExprId>, p: Pending) {
    match p {
        Pending::Neg => {
            let a = operands.pop().expect("an operand for unary minus");
            operands.push(g.neg(a));
        }
        Pending::Bin(op) => {
            let b = operands.pop().expect("a right operand");
            let a = operands.pop().expect("a left operand");
            operands.push(g.bin(op, a, b));
        }
        Pending::Paren(..) => unreachable!("parentheses are matched, not applied"),
    }
}

impl ExprGraph {
    /// Parses `src` into this graph. Errors say where (0-based character
    /// position) and what was expected.
    pub fn parse(&mut self, src: &str) -> Result<ExprId, Error> {
        let tokens = tokenize(src)?;
        let mut operands: Vec<ExprId> = Vec::new();
        let mut ops: Vec<Pending> = Vec::new();
        let mut expect_operand = true;
        let mut i = 0;
        while i < tokens.len() {
            let (pos, ref tok) = tokens[i];
            i += 1;
            if expect_operand {
                match tok {
                    Token::Num(v) => {
                        operands.push(self.num(*v));
                        expect_operand = false;
                    }
                    Token::Ident(name) if tokens[i].1 == Token::Open => {
                        let f = Func::by_name(name).ok_or_else(|| {
                            let known: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
                            error(
                                pos,
                                format!(
                                    "unknown function '{name}' (known: {}, log)",
                                    known.join(", ")
                                ),
                            )
                        })?;
                        ops.push(Pending::Paren(tokens[i].0, Some(f)));
                        i += 1;
                    }
                    Token::Ident(name) => {
                        operands.push(self.var(name));
                        expect_operand = false;
                    }
                    Token::Open => ops.push(Pending::Paren(pos, None)),
                    Token::Op('-') => ops.push(Pending::Neg),
                    Token::Op('+') => {} // unary plus
                    other => {
                        return Err(error(
                            pos,
                            format!(
                                "expected a number, a variable, a function or '(' but found {}",
                                describe(other)
                            ),
                        ));
                    }
                }
                continue;
            }
            match tok {
                Token::Op(c) => {
                    let op = match c {
                        '+' => BinOp::Add,
                        '-' => BinOp::Sub,
                        '*' => BinOp::Mul,
                        '/' => BinOp::Div,
                        _ => BinOp::Pow,
                    };
                    while let Some(top) = ops.last() {
                        let (pt, p) = (precedence(top), op.precedence());
                        if pt > p || (pt == p && !op.right_associative() && pt != 0) {
                            let top = ops.pop().unwrap();
                            apply(self, &mut operands, top);
                        } else {
                            break;
                        }
                    }
                    ops.push(Pending::Bin(op));
                    expect_operand = true;
                }
                Token::Close => loop {
                    match ops.pop() {
                        None => return Err(error(pos, "unbalanced ')': no '(' is open here")),
                        Some(Pending::Paren(_, f)) => {
                            if let Some(f) = f {
                                let a = operands.pop().unwrap();
                                operands.push(self.func(f, a));
                            }
                            break;
                        }
                        Some(p) => apply(self, &mut operands, p),
                    }
                },
                Token::End => {
                    while let Some(p) = ops.pop() {
                        match p {
                            Pending::Paren(open, _) => {
                                return Err(error(
                                    pos,
                                    format!("expected ')' to close the '(' at position {open}"),
                                ));
                            }
                            p => apply(self, &mut operands, p),
                        }
                    }
                }
                other => {
                    return Err(error(
                        pos,
                        format!("expected an operator or ')' but found {}", describe(other)),
                    ));
                }
            }
        }
        Ok(operands.pop().expect("a parsed expression"))
    }
}
